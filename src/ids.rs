//! Identifier newtypes: `TenantId`, `DocumentId`, `ChunkId`.
//!
//! Ids are checked once, when they enter the system (CLI argument, URL path, database row),
//! and travel as these types afterwards, so no layer below the edge re-validates a string.
//! An id is never derived from tenant content.

use std::fmt;

use rand::RngCore;

/// Why a string is not a valid id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {kind} id: expected `{prefix}` followed by 20 lowercase hex digits")]
pub struct InvalidId {
    kind: &'static str,
    prefix: &'static str,
}

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            const PREFIX: &'static str = $prefix;

            /// A fresh random id (80 bits).
            pub fn generate() -> Self {
                let mut bytes = [0u8; 10];
                rand::rng().fill_bytes(&mut bytes);
                Self(format!("{}{}", Self::PREFIX, hex::encode(bytes)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidId;

            fn try_from(value: &str) -> Result<Self, InvalidId> {
                let valid = value
                    .strip_prefix(Self::PREFIX)
                    .is_some_and(|rest| {
                        rest.len() == 20
                            && rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    });
                if valid {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(InvalidId { kind: $kind, prefix: Self::PREFIX })
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

random_id!(
    /// A tenant: one customer company. Everything it owns is keyed by this id.
    TenantId,
    "tenant",
    "t_"
);
random_id!(
    /// One uploaded document of one tenant.
    DocumentId,
    "document",
    "d_"
);

/// One chunk of a document's extracted text: the document id and the chunk's position.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId {
    document_id: DocumentId,
    seq: u32,
}

impl ChunkId {
    pub fn new(document_id: DocumentId, seq: u32) -> Self {
        Self { document_id, seq }
    }

    pub fn document_id(&self) -> &DocumentId {
        &self.document_id
    }

    pub fn seq(&self) -> u32 {
        self.seq
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.document_id, self.seq)
    }
}

impl TryFrom<&str> for ChunkId {
    type Error = InvalidId;

    fn try_from(value: &str) -> Result<Self, InvalidId> {
        let invalid = || InvalidId {
            kind: "chunk",
            prefix: "d_…:N",
        };
        let (document, seq) = value.split_once(':').ok_or_else(invalid)?;
        let document_id = DocumentId::try_from(document).map_err(|_| invalid())?;
        let seq = seq.parse().map_err(|_| invalid())?;
        Ok(Self { document_id, seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        let tenant = TenantId::generate();
        assert_eq!(TenantId::try_from(tenant.as_str()), Ok(tenant.clone()));
        assert!(TenantId::try_from("t_../../etc/passwd").is_err());
        assert!(TenantId::try_from("d_0123456789abcdef0123").is_err());
        assert!(TenantId::try_from("t_0123456789ABCDEF0123").is_err());
        let chunk = ChunkId::new(DocumentId::generate(), 7);
        assert_eq!(ChunkId::try_from(chunk.to_string().as_str()), Ok(chunk));
    }
}
