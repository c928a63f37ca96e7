//! One writer per data directory: `zhiku serve` (and CLI commands that write indexes) hold
//! an exclusive lock on `<data_dir>/zhiku.lock`; other commands see who holds it and either
//! read beside it or say clearly that they cannot run.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// The held lock; released on drop.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Take the lock or explain who has it.
    pub fn acquire(data_dir: &Path) -> Result<Self> {
        match Self::try_acquire(data_dir)? {
            Some(lock) => Ok(lock),
            None => Err(Error::Busy(format!(
                "another zhiku process ({}) is using {}; stop it first, or use the HTTP API of the running server",
                holder(data_dir),
                data_dir.display()
            ))),
        }
    }

    /// Take the lock if it is free.
    pub fn try_acquire(data_dir: &Path) -> Result<Option<Self>> {
        std::fs::create_dir_all(data_dir)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(data_dir.join("zhiku.lock"))?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                file.rewind()?;
                write!(file, "pid {}", std::process::id())?;
                file.sync_all()?;
                Ok(Some(Self { _file: file }))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

fn holder(data_dir: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(data_dir.join("zhiku.lock")) {
        let _ = f.read_to_string(&mut text);
    }
    if text.is_empty() {
        "unknown pid".into()
    } else {
        text
    }
}
