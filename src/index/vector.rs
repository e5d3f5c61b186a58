//! Approximate nearest-neighbour search over a tenant's chunk vectors (HNSW, hnsw_rs).
//!
//! Vectors are unit length, so cosine distance is `1 - dot`. hnsw_rs has no deletion:
//! deleted chunks are tombstoned and filtered at search time.
//!
//! Snapshots: hnsw_rs can only dump to and load from files in a directory, so
//! [`VectorIndex::snapshot`] and [`VectorIndex::restore`] stage those files in anonymous
//! memory files (`memfd_create`), which no file system lists and which vanish with the
//! process, even after `kill -9` (issue 11, finding 8; they used to sit in `/dev/shm`).
//! hnsw_rs reaches them by name through two symbolic links to `/proc/self/fd/N` in a
//! private directory of the temp dir; the links hold no content. The caller seals the
//! bytes with the tenant's key. Where memfds are unavailable, there is no snapshot and
//! the graph is rebuilt from the store's (sealed) vectors: plaintext vectors never reach
//! a file system.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;

use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo};

/// Graph degree and build effort: recall@10 ≥ 0.95 on contract chunks at these settings
/// (benches/retrieval measures it against exact search).
const MAX_CONNECTIONS: usize = 16;
const EF_CONSTRUCTION: usize = 100;
const MAX_LAYERS: usize = 16;
const EF_SEARCH_MIN: usize = 64;
/// Approximate resident bytes of one graph node besides its vector: its neighbour lists
/// (up to 2 × MAX_CONNECTIONS shared pointers on layer 0), the point and its layer
/// slots. Checked against RSS by `cargo bench --bench tenants`.
const NODE_OVERHEAD_BYTES: usize = 2_560;

/// `1 - dot(a, b)` for unit vectors, clamped at 0 (rounding can push the dot of a vector
/// with itself a hair above 1, and hnsw_rs's own DistDot asserts on that).
#[derive(Clone, Copy, Default)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        (1.0 - dot).max(0.0)
    }
}

pub struct VectorIndex {
    graph: Hnsw<'static, f32, UnitCosine>,
    /// Row ids in the graph that are still live.
    live: HashSet<u64>,
}

impl VectorIndex {
    pub fn new(expected: usize) -> VectorIndex {
        VectorIndex {
            graph: Hnsw::new(
                MAX_CONNECTIONS,
                expected.max(1_000),
                MAX_LAYERS,
                EF_CONSTRUCTION,
                UnitCosine,
            ),
            live: HashSet::new(),
        }
    }

    /// Inserts vectors (row id, unit vector); uses all cores for large batches.
    pub fn insert(&mut self, items: &[(u64, &[f32])]) {
        let batch: Vec<(&[f32], usize)> = items
            .iter()
            .filter(|(row_id, _)| !self.live.contains(row_id))
            .map(|(row_id, vector)| (*vector, *row_id as usize))
            .collect();
        if batch.len() > 64 {
            self.graph.parallel_insert_slice(&batch);
        } else {
            for item in &batch {
                self.graph.insert_slice(*item);
            }
        }
        self.live.extend(items.iter().map(|(row_id, _)| *row_id));
    }

    pub fn remove(&mut self, row_ids: &[u64]) {
        for row_id in row_ids {
            self.live.remove(row_id);
        }
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Points still in the graph whose chunks were deleted.
    pub fn tombstones(&self) -> usize {
        self.graph.get_nb_point().saturating_sub(self.live.len())
    }

    /// Approximate resident bytes of the graph, its vectors and the live set.
    pub fn approximate_bytes(&self) -> u64 {
        let nodes = self.graph.get_nb_point();
        let dimension = self.graph.get_point_indexation().get_data_dimension();
        (nodes * (dimension * 4 + NODE_OVERHEAD_BYTES) + self.live.len() * 32) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The `k` nearest live chunks: (row id, cosine similarity), best first.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<(u64, f32)> {
        self.search_within(query, k, None)
    }

    /// Like [`VectorIndex::search`], among the chunks of `within` only (when given).
    pub fn search_within(
        &self,
        query: &[f32],
        k: usize,
        within: Option<&HashSet<u64>>,
    ) -> Vec<(u64, f32)> {
        if self.live.is_empty() || k == 0 {
            return Vec::new();
        }
        let is_live = |id: &usize| {
            let id = *id as u64;
            self.live.contains(&id) && within.is_none_or(|within| within.contains(&id))
        };
        let ef = EF_SEARCH_MIN.max(2 * k);
        self.graph
            .search_filter(query, k, ef, Some(&is_live))
            .into_iter()
            .map(|neighbour| (neighbour.d_id as u64, 1.0 - neighbour.distance))
            .collect()
    }
}

const DUMP_BASENAME: &str = "vectors";

/// hnsw_rs's two dump files as anonymous memory files, named for hnsw_rs by symbolic
/// links in a private directory (removed on drop; the memfds close with it).
struct MemoryStaging {
    dir: PathBuf,
    graph: File,
    data: File,
}

/// Where the link directories live, and the prefix that marks them as ours.
const STAGING_PREFIX: &str = "bulkhead-hnsw-";

impl MemoryStaging {
    fn create() -> Option<MemoryStaging> {
        let graph = memfd(c"bulkhead-hnsw-graph")?;
        let data = memfd(c"bulkhead-hnsw-data")?;
        let dir = std::env::temp_dir().join(format!(
            "{STAGING_PREFIX}{}",
            crate::ids::DocumentId::generate()
        ));
        crate::store::files::create_private_dir(&dir).ok()?;
        let staging = MemoryStaging { dir, graph, data };
        for (file, suffix) in [(&staging.graph, "graph"), (&staging.data, "data")] {
            std::os::unix::fs::symlink(
                format!("/proc/self/fd/{}", file.as_raw_fd()),
                staging.dir.join(format!("{DUMP_BASENAME}.hnsw.{suffix}")),
            )
            .ok()?;
        }
        Some(staging)
    }

    fn read(file: &mut File) -> Option<Vec<u8>> {
        let mut bytes = Vec::new();
        file.rewind().ok()?;
        file.read_to_end(&mut bytes).ok()?;
        Some(bytes)
    }

    fn write(file: &mut File, bytes: &[u8]) -> Option<()> {
        file.write_all(bytes).ok()?;
        file.rewind().ok()
    }
}

impl Drop for MemoryStaging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn memfd(name: &std::ffi::CStr) -> Option<File> {
    // SAFETY: a valid NUL-terminated name; the returned descriptor is owned by the File.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Some(unsafe { File::from_raw_fd(fd) })
}

/// Removes what a crashed process left (older than ten minutes, so a concurrent
/// process's live staging is never touched): link directories in the temp dir (no
/// content), and staging directories of earlier versions in `/dev/shm`, which held
/// plaintext vectors.
pub fn remove_stale_staging() {
    let places = [
        (PathBuf::from("/dev/shm"), "bulkhead-"),
        (std::env::temp_dir(), STAGING_PREFIX),
    ];
    for (place, prefix) in places {
        let Ok(entries) = std::fs::read_dir(&place) else {
            continue;
        };
        for entry in entries.flatten() {
            let is_ours = entry.file_name().to_string_lossy().starts_with(prefix);
            let stale = entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(600));
            if is_ours && stale {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn put_section(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn take_section<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let length = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?) as usize;
    let section = rest.get(8..8 + length)?;
    *rest = &rest[8 + length..];
    Some(section)
}

impl VectorIndex {
    /// The graph and its vectors as one byte string, or `None` when it cannot be staged in
    /// RAM (the index is then rebuilt from the store on the next open).
    pub fn snapshot(&self) -> Option<Vec<u8>> {
        let mut staging = MemoryStaging::create()?;
        // hnsw_rs panics on some I/O failures; a failed snapshot must not take the process.
        let dumped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.graph.file_dump(&staging.dir, DUMP_BASENAME)
        }));
        match dumped {
            // The links name the memfds; any other name would be a file on disk.
            Ok(Ok(basename)) if basename == DUMP_BASENAME => {}
            _ => return None,
        }
        let graph = MemoryStaging::read(&mut staging.graph)?;
        let data = MemoryStaging::read(&mut staging.data)?;
        let mut live: Vec<u64> = self.live.iter().copied().collect();
        live.sort_unstable();
        let mut out = Vec::with_capacity(graph.len() + data.len() + live.len() * 8 + 32);
        put_section(
            &mut out,
            &live
                .iter()
                .flat_map(|id| id.to_le_bytes())
                .collect::<Vec<u8>>(),
        );
        put_section(&mut out, &graph);
        put_section(&mut out, &data);
        Some(out)
    }

    /// Loads a snapshot made by [`VectorIndex::snapshot`]; `None` if it cannot be used.
    pub fn restore(snapshot: &[u8]) -> Option<VectorIndex> {
        let mut rest = snapshot;
        let live_bytes = take_section(&mut rest)?;
        let graph = take_section(&mut rest)?;
        let data = take_section(&mut rest)?;
        let live: HashSet<u64> = live_bytes
            .chunks_exact(8)
            .map(|chunk| u64::from_le_bytes(chunk.try_into().unwrap_or_default()))
            .collect();
        let mut staging = MemoryStaging::create()?;
        MemoryStaging::write(&mut staging.graph, graph)?;
        MemoryStaging::write(&mut staging.data, data)?;
        // The loaded graph borrows its loader for its lifetime ('b: 'a in hnsw_rs). The
        // loader is a few hundred bytes of paths and options (the vectors are copied into
        // the graph, not mapped), so it is leaked: one small allocation per cold open.
        let loader: &'static HnswIo = Box::leak(Box::new(HnswIo::new(&staging.dir, DUMP_BASENAME)));
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            loader.load_hnsw_with_dist::<f32, UnitCosine>(UnitCosine)
        }));
        let mut graph = match loaded {
            Ok(Ok(graph)) => graph,
            _ => return None,
        };
        graph.set_searching_mode(false);
        Some(VectorIndex { graph, live })
    }

    /// Row ids in the graph that are live.
    pub fn live_ids(&self) -> &HashSet<u64> {
        &self.live
    }
}

/// Exact search, for measuring the graph's recall.
pub fn exact_search(items: &[(u64, Vec<f32>)], query: &[f32], k: usize) -> Vec<(u64, f32)> {
    let mut scored: Vec<(u64, f32)> = items
        .iter()
        .map(|(row_id, vector)| (*row_id, crate::embed::dot(vector, query)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn unit(vector: Vec<f32>) -> Vec<f32> {
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        vector.into_iter().map(|x| x / norm).collect()
    }

    #[test]
    fn issue_11_snapshots_are_staged_in_memory_files_only() {
        let mut staging = MemoryStaging::create().expect("memfd staging");
        let link = staging.dir.join(format!("{DUMP_BASENAME}.hnsw.data"));
        // Written by name, the way hnsw_rs writes, and read back from the memfd.
        std::fs::write(&link, b"plaintext vectors").unwrap();
        assert_eq!(
            MemoryStaging::read(&mut staging.data).unwrap(),
            b"plaintext vectors"
        );
        let target =
            std::fs::read_link(format!("/proc/self/fd/{}", staging.data.as_raw_fd())).unwrap();
        assert!(
            target.to_string_lossy().starts_with("/memfd:"),
            "{}",
            target.display()
        );
        // The directory holds links only: no regular file with content.
        for entry in std::fs::read_dir(&staging.dir).unwrap() {
            assert!(entry.unwrap().file_type().unwrap().is_symlink());
        }
        let dir = staging.dir.clone();
        drop(staging);
        assert!(!dir.exists());

        // A round trip through the memfds gives the same graph.
        let mut rng = rand::rng();
        let items: Vec<(u64, Vec<f32>)> = (1..=100u64)
            .map(|id| {
                (
                    id,
                    unit((0..32).map(|_| rng.random::<f32>() - 0.5).collect()),
                )
            })
            .collect();
        let mut index = VectorIndex::new(items.len());
        index.insert(
            &items
                .iter()
                .map(|(id, v)| (*id, v.as_slice()))
                .collect::<Vec<_>>(),
        );
        let restored = VectorIndex::restore(&index.snapshot().expect("snapshot")).expect("restore");
        assert_eq!(restored.search(&items[7].1, 1)[0].0, 8);
    }

    #[test]
    fn finds_nearest_and_honours_tombstones() {
        let mut rng = rand::rng();
        let items: Vec<(u64, Vec<f32>)> = (0..2_000u64)
            .map(|id| {
                (
                    id + 1,
                    unit((0..64).map(|_| rng.random::<f32>() - 0.5).collect()),
                )
            })
            .collect();
        let mut index = VectorIndex::new(items.len());
        let refs: Vec<(u64, &[f32])> = items.iter().map(|(id, v)| (*id, v.as_slice())).collect();
        index.insert(&refs);
        let mut found = 0;
        for (id, vector) in items.iter().take(50) {
            let hits = index.search(vector, 10);
            assert!(hits.len() == 10);
            let exact: Vec<u64> = exact_search(&items, vector, 10)
                .into_iter()
                .map(|h| h.0)
                .collect();
            found += hits.iter().filter(|h| exact.contains(&h.0)).count();
            assert_eq!(hits[0].0, *id);
        }
        assert!(found as f32 / 500.0 > 0.9, "recall@10 {found}/500");
        index.remove(&[items[0].0]);
        assert!(
            index
                .search(&items[0].1, 10)
                .iter()
                .all(|h| h.0 != items[0].0)
        );
    }
}
