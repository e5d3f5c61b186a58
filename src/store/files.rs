//! Crash-safe file replacement: write a temporary file, fsync it, rename it over the
//! target, fsync the directory. A reader sees the old file or the new one, never a torn one.
//!
//! Callers pass ciphertext only; this module never sees plaintext tenant content.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use rand::RngCore;

pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    fs::create_dir_all(dir)?;
    let mut suffix = [0u8; 6];
    rand::rng().fill_bytes(&mut suffix);
    let temporary = dir.join(format!(".tmp-{}", hex::encode(suffix)));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates a directory (and parents) readable by the owner only.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// A temporary older than this is a crash's leftover, not a write in progress in another
/// process (`bulkhead ingest` beside a running server): a write takes well under a second.
pub const STALE_TEMPORARY_AGE: Duration = Duration::from_secs(10 * 60);

/// Removes leftovers of writes that a crash interrupted: `.tmp-*` files in `dir` last
/// modified more than `older_than` ago. Returns how many were removed.
pub fn remove_stale_temporaries(dir: &Path, older_than: Duration) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with(".tmp-") {
            continue;
        }
        let metadata = entry.metadata()?;
        let age = metadata
            .modified()
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .unwrap_or_default();
        if metadata.is_file() && age >= older_than {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                // Another process got there first.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(removed)
}

impl super::Store {
    /// Removes the stale temporaries of one tenant's directories (blobs, index
    /// snapshots), where [`write_atomic`] writes; called when the tenant's index opens,
    /// so start-up does no per-tenant work. Temporaries hold ciphertext only, so this is
    /// housekeeping, not secrecy.
    pub fn remove_stale_tenant_temporaries(
        &self,
        tenant_id: &crate::ids::TenantId,
    ) -> io::Result<usize> {
        let tenant_dir = self.root.join("tenants").join(tenant_id.as_str());
        let areas = match fs::read_dir(&tenant_dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(error),
        };
        let mut removed = remove_stale_temporaries(&tenant_dir, STALE_TEMPORARY_AGE)?;
        for area in areas {
            let area = area?;
            if area.file_type()?.is_dir() {
                removed += remove_stale_temporaries(&area.path(), STALE_TEMPORARY_AGE)?;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_temporaries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join(".tmp-old");
        let fresh = dir.path().join(".tmp-fresh");
        let kept = dir.path().join("blob.bin");
        for path in [&old, &fresh, &kept] {
            fs::write(path, b"x").unwrap();
        }
        let past = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(past)
            .unwrap();
        File::options()
            .write(true)
            .open(&kept)
            .unwrap()
            .set_modified(past)
            .unwrap();
        assert_eq!(
            remove_stale_temporaries(dir.path(), STALE_TEMPORARY_AGE).unwrap(),
            1
        );
        assert!(!old.exists() && fresh.exists() && kept.exists());
    }
}
