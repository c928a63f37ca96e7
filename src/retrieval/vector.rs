//! Semantic retrieval: an HNSW graph (hnsw_rs) per knowledge base, keyed by chunk `seq`.
//!
//! hnsw_rs cannot delete points. Keying by `seq` (bumped on every chunk change) makes a
//! stale point harmless: its seq no longer exists in SQLite, so the search service drops
//! it. `zhiku reindex` compacts the graph. The graph lives in memory and is dumped to disk
//! every so often; after a crash the points newer than the dump are replayed from SQLite.
//!
//! The graph holds its coordinates as f16, which takes 0.75 KB off each chunk of a 384-dim
//! model (a fifth of the memory of a 1M-chunk KB). A cosine between unit vectors in f16
//! is within about 1e-3 of the f32 one, far below the gaps between the candidates that
//! fusion ranks; SQLite keeps every vector in f32, so a rebuilt graph loses nothing.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};
use simsimd::SpatialSimilarity;

use crate::error::{Error, Result};

/// Cosine distance for L2-normalised vectors, clamped at 0 (hnsw_rs's `DistDot` asserts
/// on the tiny negative values rounding gives for identical vectors).
#[derive(Default, Clone, Copy, Debug)]
pub struct UnitCosine;

/// A coordinate as the graph stores it: the bits of an IEEE binary16 (`simsimd::f16`).
/// hnsw_rs needs a serde type, which `simsimd::f16` is not, so the graph holds the bits.
type Half = u16;

impl Distance<Half> for UnitCosine {
    fn eval(&self, a: &[Half], b: &[Half]) -> f32 {
        (1.0 - dot_f16(a, b)).max(0.0)
    }
}

/// `v` rounded to f16, as the graph stores it.
fn to_halves(v: &[f32]) -> Vec<Half> {
    v.iter().map(|&x| simsimd::f16::from_f32(x).0).collect()
}

/// Dot product of two f16 vectors, accumulated in f32 by simsimd's kernel for this CPU
/// (F16C + FMA or AVX-512, picked at run time). Every search and every graph insertion is
/// mostly this function; converting one coordinate at a time instead made indexing twice
/// as slow as f32.
fn dot_f16(a: &[Half], b: &[Half]) -> f32 {
    // SAFETY: `simsimd::f16` is `#[repr(transparent)]` over `u16`, so a slice of `u16` is a
    // valid slice of it, element for element.
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(a.as_ptr().cast::<simsimd::f16>(), a.len()),
            std::slice::from_raw_parts(b.as_ptr().cast::<simsimd::f16>(), b.len()),
        )
    };
    // Lengths always match (insert and search check the dims); a mismatch scores as
    // orthogonal rather than panicking inside the graph.
    simsimd::f16::dot(a, b).unwrap_or(0.0) as f32
}

/// Lanes of independent partial sums in [`dot`].
const DOT_LANES: usize = 16;

/// Dot product in [`DOT_LANES`] independent partial sums. A plain `zip().sum()` is one
/// chain of dependent float additions that the compiler may not reorder, so it runs at one
/// add per few cycles; independent lanes let it use SIMD registers. The exact scans that
/// score the graph's recall are mostly this function.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(DOT_LANES), b.chunks_exact(DOT_LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut lanes = [0.0f32; DOT_LANES];
    for (x, y) in ca.zip(cb) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Graph parameters.
#[derive(Debug, Clone, Copy)]
pub struct HnswParams {
    /// Max connections per node.
    pub max_connections: usize,
    /// Build breadth.
    pub ef_construction: usize,
}

/// What is saved beside the graph.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    dims: usize,
    applied_seq: i64,
    points: usize,
    /// How the graph stores a coordinate. Graphs saved before f16 have no such field;
    /// hnsw_rs panics on a dump of another type, so those are rebuilt from SQLite instead.
    #[serde(default = "Coordinates::saved_before_f16")]
    coordinates: Coordinates,
}

/// A saved graph's coordinate type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Coordinates {
    F32,
    F16,
}

impl Coordinates {
    fn saved_before_f16() -> Self {
        Self::F32
    }
}

const BASENAME: &str = "hnsw";
const MAX_LAYERS: usize = 16;
/// Below this many points a graph is built one insertion at a time. Parallel insertions
/// into a near-empty graph race each other into poorly linked nodes: a 69-point graph
/// built in parallel once left a chunk its own vector could not find (hnsw_rs's docs ask
/// for ~1000 insertions per thread before parallel pays off).
const SERIAL_SEED_POINTS: usize = 1_000;

/// The vector index of one KB.
pub struct VectorIndex {
    dir: PathBuf,
    dims: usize,
    graph: RwLock<Hnsw<'static, Half, UnitCosine>>,
    applied_seq: AtomicI64,
    points: AtomicUsize,
    unsaved_points: AtomicUsize,
}

fn new_graph(params: HnswParams, capacity: usize) -> Hnsw<'static, Half, UnitCosine> {
    Hnsw::new(
        params.max_connections,
        capacity.max(10_000),
        MAX_LAYERS,
        params.ef_construction,
        UnitCosine,
    )
}

impl VectorIndex {
    /// Open the saved graph in `dir`, or start an empty one when there is none (or it is
    /// unreadable: SQLite has everything to rebuild it, which the caller then does).
    pub fn open(dir: &Path, dims: usize, params: HnswParams) -> Result<Self> {
        let old = dir.with_extension("old");
        if !dir.exists() && old.exists() {
            // A save was interrupted between its two renames: the previous graph is whole.
            std::fs::rename(&old, dir)?;
        }
        let loaded = match Self::load(dir, dims) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "vector index unreadable; it will be rebuilt from SQLite");
                None
            }
        };
        let (graph, meta) = loaded.unwrap_or_else(|| {
            (
                new_graph(params, 0),
                Meta {
                    dims,
                    applied_seq: 0,
                    points: 0,
                    coordinates: Coordinates::F16,
                },
            )
        });
        Ok(Self {
            dir: dir.to_path_buf(),
            dims,
            graph: RwLock::new(graph),
            applied_seq: AtomicI64::new(meta.applied_seq),
            points: AtomicUsize::new(meta.points),
            unsaved_points: AtomicUsize::new(0),
        })
    }

    fn load(dir: &Path, dims: usize) -> Result<Option<(Hnsw<'static, Half, UnitCosine>, Meta)>> {
        let meta_path = dir.join("meta.json");
        if !meta_path.is_file() {
            return Ok(None);
        }
        let meta: Meta = serde_json::from_slice(&std::fs::read(&meta_path)?)
            .map_err(|e| Error::Index(format!("{}: {e}", meta_path.display())))?;
        if meta.dims != dims {
            return Err(Error::Index(format!(
                "saved graph has {} dims, expected {dims}",
                meta.dims
            )));
        }
        if meta.points == 0 {
            return Ok(None);
        }
        if meta.coordinates != Coordinates::F16 {
            tracing::info!(dir = %dir.display(), "vector index saved with f32 coordinates; it will be rebuilt from SQLite in f16");
            return Ok(None);
        }
        // The loaded graph borrows from its reader; without mmap it owns all its data, so the
        // small reader is leaked to give the graph a 'static lifetime (once per load).
        let reader: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, BASENAME)));
        let graph = reader
            .load_hnsw::<Half, UnitCosine>()
            .map_err(|e| Error::Index(format!("cannot load {}: {e}", dir.display())))?;
        Ok(Some((graph, meta)))
    }

    /// Dimensions of its vectors.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The highest chunk seq applied.
    pub fn applied_seq(&self) -> i64 {
        self.applied_seq.load(Ordering::SeqCst)
    }

    /// Points in the graph, stale ones included.
    pub fn points(&self) -> usize {
        self.points.load(Ordering::SeqCst)
    }

    /// Add `(seq, vector)` points and move the mark to `applied_seq`.
    pub fn insert(&self, points: &[(i64, Vec<f32>)], applied_seq: i64) -> Result<()> {
        if let Some((_, v)) = points.iter().find(|(_, v)| v.len() != self.dims) {
            return Err(Error::Index(format!(
                "vector of {} dims in a {}-dim index",
                v.len(),
                self.dims
            )));
        }
        let graph = self
            .graph
            .read()
            .map_err(|_| Error::Index("vector index poisoned".into()))?;
        let serial = SERIAL_SEED_POINTS
            .saturating_sub(graph.get_nb_point())
            .min(points.len());
        let halves: Vec<(Vec<Half>, usize)> = points
            .iter()
            .map(|(seq, v)| (to_halves(v), *seq as usize))
            .collect();
        let (seed, rest) = halves.split_at(serial);
        for (v, id) in seed {
            graph.insert((v.as_slice(), *id));
        }
        let data: Vec<(&Vec<Half>, usize)> = rest.iter().map(|(v, id)| (v, *id)).collect();
        if data.len() > 64 {
            graph.parallel_insert(&data);
        } else {
            for (v, id) in data {
                graph.insert((v.as_slice(), id));
            }
        }
        self.points.fetch_add(points.len(), Ordering::SeqCst);
        self.unsaved_points
            .fetch_add(points.len(), Ordering::SeqCst);
        self.applied_seq.fetch_max(applied_seq, Ordering::SeqCst);
        Ok(())
    }

    /// Move the mark without new points (the changes were deletions).
    pub fn advance(&self, applied_seq: i64) {
        self.applied_seq.fetch_max(applied_seq, Ordering::SeqCst);
    }

    /// Nearest points to `query`: (seq, cosine similarity), best first.
    pub fn search(&self, query: &[f32], limit: usize, ef_search: usize) -> Result<Vec<(i64, f32)>> {
        if self.points() == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        if query.len() != self.dims {
            return Err(Error::Index(format!(
                "query of {} dims in a {}-dim index",
                query.len(),
                self.dims
            )));
        }
        let graph = self
            .graph
            .read()
            .map_err(|_| Error::Index("vector index poisoned".into()))?;
        let query = to_halves(query);
        let hits = graph.search(&query, limit, ef_search.max(limit));
        Ok(hits
            .into_iter()
            .map(|n| (n.d_id as i64, 1.0 - n.distance))
            .collect())
    }

    /// The seqs of every point in the graph, stale ones included (an exact membership
    /// list for consistency checks; search itself is approximate).
    pub fn seqs(&self) -> Result<std::collections::HashSet<i64>> {
        let graph = self
            .graph
            .read()
            .map_err(|_| Error::Index("vector index poisoned".into()))?;
        if graph.get_nb_point() == 0 {
            return Ok(Default::default());
        }
        Ok(graph
            .get_point_indexation()
            .into_iter()
            .map(|p| p.get_origin_id() as i64)
            .collect())
    }

    /// Points added since the last save.
    pub fn unsaved_points(&self) -> usize {
        self.unsaved_points.load(Ordering::SeqCst)
    }

    /// Write the graph and its mark to disk: into a fresh folder, then swapped in by rename,
    /// so a crash leaves either the old or the new graph whole.
    pub fn save(&self) -> Result<()> {
        let graph = self
            .graph
            .write()
            .map_err(|_| Error::Index("vector index poisoned".into()))?;
        let points = self.points();
        let meta = Meta {
            dims: self.dims,
            applied_seq: self.applied_seq(),
            points,
            coordinates: Coordinates::F16,
        };
        let tmp = self.dir.with_extension("tmp");
        let old = self.dir.with_extension("old");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        if points > 0 {
            graph
                .file_dump(&tmp, BASENAME)
                .map_err(|e| Error::Index(format!("cannot save vector index: {e}")))?;
        }
        let meta_bytes = serde_json::to_vec(&meta).map_err(|e| Error::Index(e.to_string()))?;
        std::fs::write(tmp.join("meta.json"), meta_bytes)?;
        sync_dir(&tmp)?;
        if self.dir.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old)?;
            }
            std::fs::rename(&self.dir, &old)?;
        }
        std::fs::rename(&tmp, &self.dir)?;
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        self.unsaved_points.store(0, Ordering::SeqCst);
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        std::fs::File::open(entry?.path())?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// A seeded stream of coordinates in [-0.5, 0.5) (a linear congruential generator).
    fn coordinates(seed: u64) -> impl FnMut() -> f32 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        }
    }

    const PARAMS: HnswParams = HnswParams {
        max_connections: 16,
        ef_construction: 100,
    };

    #[test]
    fn nearest_point_survives_save_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors");
        let idx = VectorIndex::open(&path, 3, PARAMS).unwrap();
        idx.insert(
            &[
                (1, unit(&[1.0, 0.0, 0.0])),
                (2, unit(&[0.0, 1.0, 0.0])),
                (3, unit(&[1.0, 1.0, 0.0])),
            ],
            3,
        )
        .unwrap();
        // Identical vectors must not trip the distance (rounding can make 1 - dot negative).
        idx.insert(&[(4, unit(&[1.0, 0.0, 0.0]))], 4).unwrap();
        let hits = idx.search(&unit(&[0.9, 0.1, 0.0]), 2, 16).unwrap();
        assert!(hits[0].0 == 1 || hits[0].0 == 4, "{hits:?}");
        idx.save().unwrap();
        let again = VectorIndex::open(&path, 3, PARAMS).unwrap();
        assert_eq!(again.applied_seq(), 4);
        assert_eq!(again.points(), 4);
        let hits = again.search(&unit(&[0.0, 1.0, 0.1]), 1, 16).unwrap();
        assert_eq!(hits[0].0, 2);
    }

    #[test]
    fn every_point_of_a_small_batch_finds_itself() {
        // 200 points in one call: the graph is seeded serially, so each is reachable.
        let dir = tempfile::tempdir().unwrap();
        let idx = VectorIndex::open(&dir.path().join("v"), 8, PARAMS).unwrap();
        let mut next = coordinates(0x2545_f491);
        let points: Vec<(i64, Vec<f32>)> = (1..=200)
            .map(|i| (i, unit(&(0..8).map(|_| next()).collect::<Vec<f32>>())))
            .collect();
        idx.insert(&points, 200).unwrap();
        assert_eq!(idx.seqs().unwrap().len(), 200);
        for (seq, v) in &points {
            let hits = idx.search(v, 10, 64).unwrap();
            assert!(hits.iter().any(|(s, _)| s == seq), "{seq} not found");
        }
    }

    #[test]
    fn points_added_beside_a_cluster_of_near_duplicates_stay_findable() {
        // Templated documents give groups of near-identical chunks. Once such a group is
        // larger than a list of links holds, every member's list is full of the others,
        // and a list that keeps only its nearest links drops every newcomer from outside
        // the group: searches, which start inside it, could then never reach them.
        // (hnsw_rs as published lost 14 of these 1,500; see vendor/hnsw_rs/ZHIKU-PATCH.md.)
        let params = HnswParams {
            max_connections: 16,
            ef_construction: 64,
        };
        let mut lost = Vec::new();
        for round in 0..5u64 {
            let dir = tempfile::tempdir().unwrap();
            let idx = VectorIndex::open(&dir.path().join("v"), 8, params).unwrap();
            let mut next = coordinates(0x5851_f42d + round * 7919);
            let centre: Vec<f32> = (0..8).map(|_| next()).collect();
            let group: Vec<(i64, Vec<f32>)> = (1..=400)
                .map(|i| {
                    let v: Vec<f32> = centre.iter().map(|c| c + next() * 0.02).collect();
                    (i, unit(&v))
                })
                .collect();
            idx.insert(&group, 400).unwrap();
            let others: Vec<(i64, Vec<f32>)> = (401..=700)
                .map(|i| (i, unit(&(0..8).map(|_| next()).collect::<Vec<f32>>())))
                .collect();
            for point in &others {
                idx.insert(std::slice::from_ref(point), point.0).unwrap();
            }
            for (seq, v) in &others {
                let hits = idx.search(v, 10, 64).unwrap();
                if !hits.iter().any(|(s, _)| s == seq) {
                    lost.push((round, *seq));
                }
            }
        }
        assert!(
            lost.is_empty(),
            "{} of 1,500 not found: {lost:?}",
            lost.len()
        );
    }

    #[test]
    fn dot_matches_the_plain_sum() {
        for len in [0, 3, 16, 17, 384, 385] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-4, "{len}");
        }
    }

    #[test]
    fn f16_cosines_stay_within_a_thousandth_of_f32() {
        let mut next = coordinates(0x9e37_79b9);
        for _ in 0..100 {
            let a = unit(&(0..384).map(|_| next()).collect::<Vec<f32>>());
            let b = unit(&(0..384).map(|_| next() + 0.3).collect::<Vec<f32>>());
            let diff = (dot_f16(&to_halves(&a), &to_halves(&b)) - dot(&a, &b)).abs();
            assert!(diff < 1e-3, "{diff}");
        }
    }

    #[test]
    fn a_graph_saved_with_f32_coordinates_is_rebuilt_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors");
        let idx = VectorIndex::open(&path, 3, PARAMS).unwrap();
        idx.insert(&[(1, unit(&[1.0, 0.0, 0.0]))], 1).unwrap();
        idx.save().unwrap();
        // What an older zhiku wrote: the same meta without the coordinates field.
        std::fs::write(
            path.join("meta.json"),
            r#"{"dims":3,"applied_seq":1,"points":1}"#,
        )
        .unwrap();
        let again = VectorIndex::open(&path, 3, PARAMS).unwrap();
        assert_eq!(again.points(), 0);
        assert_eq!(
            again.applied_seq(),
            0,
            "every chunk is replayed from SQLite"
        );
    }

    #[test]
    fn wrong_dimensions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let idx = VectorIndex::open(&dir.path().join("v"), 3, PARAMS).unwrap();
        assert!(idx.insert(&[(1, vec![1.0, 0.0])], 1).is_err());
    }
}
