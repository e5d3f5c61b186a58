//! Metering: one row per query (counts and token numbers only, never content), and a
//! tenant's stored totals.

use rusqlite::params;

use super::rows::{TenantDb, sql};
use super::{Store, StoreError};
use crate::auth::TenantScope;

/// A tenant's usage for a period (stored totals are current).
#[derive(Clone, Debug)]
pub struct Usage {
    pub documents: u64,
    pub chunks: u64,
    pub bytes_stored: u64,
    pub queries: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
}

/// A tenant's stored documents, original bytes and chunks.
pub(super) fn stored_totals(
    connection: &TenantDb<'_>,
    tenant: &str,
) -> Result<(i64, i64, i64), rusqlite::Error> {
    let (documents, bytes): (i64, i64) = connection.query_row(
        &sql("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM t_documents WHERE tenant_id = ?1"),
        params![tenant],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let chunks: i64 = connection.query_row(
        &sql("SELECT COUNT(*) FROM t_chunks WHERE tenant_id = ?1"),
        params![tenant],
        |row| row.get(0),
    )?;
    Ok((documents, bytes, chunks))
}

impl Store {
    /// Records one query for metering.
    pub fn record_usage(
        &self,
        scope: &TenantScope,
        kind: &str,
        tokens_in: usize,
        tokens_out: usize,
    ) -> Result<(), StoreError> {
        self.tenant(scope).execute(
            &sql("INSERT INTO t_usage_events (tenant_id, at, kind, tokens_in, tokens_out) VALUES (?1, ?2, ?3, ?4, ?5)"),
            params![scope.tenant_id().as_str(), crate::time::now(), kind, tokens_in as i64, tokens_out as i64],
        )?;
        Ok(())
    }

    /// The tenant's usage: what it stores now, and its queries and tokens in [from, to).
    pub fn usage(&self, scope: &TenantScope, from: i64, to: i64) -> Result<Usage, StoreError> {
        let connection = self.tenant(scope);
        let tenant = scope.tenant_id().as_str();
        let (documents, bytes, chunks) = stored_totals(&connection, tenant)?;
        let (queries, tokens_in, tokens_out): (i64, i64, i64) = connection.query_row(
            &sql(
                "SELECT COUNT(*), COALESCE(SUM(tokens_in), 0), COALESCE(SUM(tokens_out), 0)
             FROM t_usage_events WHERE tenant_id = ?1 AND at >= ?2 AND at < ?3",
            ),
            params![tenant, from, to],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        Ok(Usage {
            documents: documents as u64,
            chunks: chunks as u64,
            bytes_stored: bytes as u64,
            queries: queries as u64,
            tokens_in: tokens_in as u64,
            tokens_out: tokens_out as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{new_tenant, temp_store};

    #[test]
    fn usage_counts_the_period_s_queries_and_what_is_stored() {
        let (_dir, store) = temp_store();
        let alpha = new_tenant(&store, "Alpha");
        let beta = new_tenant(&store, "Beta");
        store.put_document(&alpha, "a.txt", None, b"abcd").unwrap();
        store.record_usage(&alpha, "ask", 100, 20).unwrap();
        store.record_usage(&alpha, "search", 7, 0).unwrap();
        store.record_usage(&beta, "ask", 1_000, 1_000).unwrap();
        let usage = store.usage(&alpha, 0, i64::MAX).unwrap();
        assert_eq!(
            (usage.documents, usage.bytes_stored, usage.chunks),
            (1, 4, 0)
        );
        assert_eq!(
            (usage.queries, usage.tokens_in, usage.tokens_out),
            (2, 107, 20)
        );
        assert_eq!(store.usage(&alpha, 0, 1).unwrap().queries, 0);
    }
}
