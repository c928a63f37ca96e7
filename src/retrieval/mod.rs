//! Retrieval indexes derived from SQLite: BM25 ([`bm25`]), vectors ([`vector`]) and the
//! way their rankings are combined ([`fusion`]).
//!
//! Each KB's indexes live in `data/kbs/<kb_id>/gen-<n>/{bm25,vectors}`; the file `CURRENT`
//! names the generation in use. A rebuild writes a new generation and then replaces
//! `CURRENT` by rename, so a crash mid-rebuild leaves the previous indexes in use.

pub mod bm25;
pub mod fusion;
pub mod jieba;
pub mod vector;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use bm25::Bm25Index;
use vector::{HnswParams, VectorIndex};

/// The indexes of one KB generation.
pub struct KbIndexes {
    /// Full-text index.
    pub bm25: Bm25Index,
    /// Vector index.
    pub vectors: VectorIndex,
    /// The generation these live in.
    pub generation: u64,
    /// Serialises catch-up and rebuild of this KB.
    pub apply_lock: tokio::sync::Mutex<()>,
}

/// Folder of a KB's indexes.
pub fn kb_dir(data_dir: &Path, kb_id: &str) -> PathBuf {
    data_dir.join("kbs").join(kb_id)
}

fn generation_dir(kb_dir: &Path, generation: u64) -> PathBuf {
    kb_dir.join(format!("gen-{generation}"))
}

/// The generation `CURRENT` names (0 when there is none yet).
pub fn current_generation(kb_dir: &Path) -> Result<u64> {
    match std::fs::read_to_string(kb_dir.join("CURRENT")) {
        Ok(text) => text.trim().parse().map_err(|_| {
            Error::Index(format!(
                "{}/CURRENT is not a number: {text:?}",
                kb_dir.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}

impl KbIndexes {
    /// Open a generation's indexes (creating empty ones if absent); `read_only` for a CLI
    /// beside a running server, which must not rebuild what the server uses.
    pub fn open(
        kb_dir: &Path,
        generation: u64,
        dims: usize,
        params: HnswParams,
        read_only: bool,
    ) -> Result<Self> {
        let dir = generation_dir(kb_dir, generation);
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            bm25: Bm25Index::open(&dir.join("bm25"), read_only)?,
            vectors: VectorIndex::open(&dir.join("vectors"), dims, params)?,
            generation,
            apply_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Empty indexes in `generation`, replacing whatever a crashed attempt left there.
    pub fn create(kb_dir: &Path, generation: u64, dims: usize, params: HnswParams) -> Result<Self> {
        let dir = generation_dir(kb_dir, generation);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        Self::open(kb_dir, generation, dims, params, false)
    }

    /// Open the current generation; unless `read_only`, remove generations left over by an
    /// interrupted rebuild.
    pub fn open_current(
        kb_dir: &Path,
        dims: usize,
        params: HnswParams,
        read_only: bool,
    ) -> Result<Self> {
        let generation = current_generation(kb_dir)?;
        if !read_only {
            remove_other_generations(kb_dir, generation)?;
        }
        Self::open(kb_dir, generation, dims, params, read_only)
    }
}

/// Make `generation` the one in use (atomic rename of `CURRENT`), then drop the others.
pub fn make_current(kb_dir: &Path, generation: u64) -> Result<()> {
    let tmp = kb_dir.join("CURRENT.tmp");
    std::fs::write(&tmp, generation.to_string())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, kb_dir.join("CURRENT"))?;
    remove_other_generations(kb_dir, generation)
}

fn remove_other_generations(kb_dir: &Path, keep: u64) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(kb_dir) else {
        return Ok(());
    };
    let keep_name = format!("gen-{keep}");
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("gen-") && name != keep_name {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}
