//! [`FileStore`]: the records in one JSON file, for a single process without a database.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::records::Records;
use crate::traits::{StateStore, StoreError};

/// The version of the file's layout; a file of another version is refused, not guessed at.
const FORMAT: u32 = 1;

/// The largest state file read back (ours): far above what 10,000 servers need (a few MiB),
/// and a bound on what a wrong path (a device, a huge file) can make the process read.
pub const MAX_STATE_FILE: u64 = 256 * 1024 * 1024;

/// Keeps the records in a JSON file. Each save writes a new file next to it, flushes it to the
/// disk and renames it over the old one, so a crash or a power cut leaves the old state or the
/// new one, never a torn file. The file holds no secret (no token, password or script) and is
/// created with mode 0600 all the same.
///
/// One writer per file: the first load takes an advisory lock on `PATH.lock` (holding this
/// process's id) for as long as the store lives, and a second process on the same file is
/// refused at its load, naming the holder (for several replicas use a database store with a
/// leader lease). Within a process, saves through one store and its clones run one at a time,
/// each to the end of its write even when its caller gave up; the temporary file `PATH.new`
/// is created afresh for each save (never through a link left in its place).
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
    /// One save at a time: held by the blocking write itself, so that dropping a save's future
    /// does not let the next save share the temporary file.
    saving: Arc<tokio::sync::Mutex<()>>,
    /// The lock file, locked, once the first load took it.
    lock: Arc<std::sync::Mutex<Option<fs::File>>>,
}

#[derive(Serialize)]
struct Saved<'a> {
    format: u32,
    records: &'a Records,
}

#[derive(Deserialize)]
struct Loaded {
    format: u32,
    records: serde_json::Value,
}

impl FileStore {
    /// A store in `path` (read at the first load, created at the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            saving: Default::default(),
            lock: Default::default(),
        }
    }

    /// `PATH.lock`, `PATH.new`: the files beside the state file.
    fn beside(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }

    /// Takes the advisory lock on `PATH.lock` (once per store), or says who holds it.
    fn take_lock(&self) -> Result<(), StoreError> {
        let mut held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_some() {
            return Ok(());
        }
        let path = self.beside(".lock");
        let shown = path.display();
        let mut options = fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&path)
            .map_err(|e| StoreError::Unavailable(format!("{shown}: cannot open: {e}")))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = std::io::Read::read_to_string(&mut file, &mut holder);
                let holder: String = holder.trim().chars().take(200).collect();
                return Err(StoreError::Locked(format!(
                    "{} is used by another process ({}): one process per state file",
                    self.path.display(),
                    if holder.is_empty() {
                        "unknown"
                    } else {
                        &holder
                    }
                )));
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(StoreError::Unavailable(format!(
                    "{shown}: cannot lock: {e}"
                )));
            }
        }
        let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let holder = format!("pid {} on {}", std::process::id(), host.trim());
        file.set_len(0)
            .and_then(|()| file.write_all(holder.as_bytes()))
            .map_err(|e| StoreError::Unavailable(format!("{shown}: cannot write: {e}")))?;
        tracing::info!(lock = %shown, "state file locked");
        *held = Some(file);
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl StateStore for FileStore {
    async fn load(&self) -> Result<Option<Records>, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || load(&store))
            .await
            .map_err(|e| StoreError::Unavailable(format!("load: {e}")))?
    }

    async fn save(&self, records: &Records) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&Saved {
            format: FORMAT,
            records,
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot encode the records: {e}")))?;
        let store = self.clone();
        let one_at_a_time = self.saving.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || {
            let _held_to_the_end = one_at_a_time;
            store.take_lock()?;
            save(&store.path, &store.beside(".new"), &bytes)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("save: {e}")))?
    }
}

/// Reads the state file, taking the store's lock first (once it is known to be a place for a
/// state file: nothing is created beside a device or a directory).
fn load(store: &FileStore) -> Result<Option<Records>, StoreError> {
    let path = store.path();
    let shown = path.display();
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            store.take_lock()?;
            return Ok(None);
        }
        Err(e) => return Err(StoreError::Unavailable(format!("{shown}: {e}"))),
    };
    if !meta.is_file() {
        return Err(StoreError::Corrupt(format!("{shown}: not a regular file")));
    }
    if meta.len() > MAX_STATE_FILE {
        return Err(StoreError::Corrupt(format!(
            "{shown}: {} bytes, more than the {MAX_STATE_FILE} a state file may have",
            meta.len()
        )));
    }
    store.take_lock()?;
    let bytes = fs::read(path).map_err(|e| StoreError::Unavailable(format!("{shown}: {e}")))?;
    let loaded: Loaded =
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(format!("{shown}: {e}")))?;
    if loaded.format != FORMAT {
        return Err(StoreError::Corrupt(format!(
            "{shown}: format {} is not the format {FORMAT} this version reads",
            loaded.format
        )));
    }
    let records = serde_path_to_error::deserialize(loaded.records).map_err(|e| {
        StoreError::Corrupt(format!("{shown}: records.{}: {}", e.path(), e.inner()))
    })?;
    Ok(Some(records))
}

fn save(path: &Path, temp: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let shown = path.display();
    let fail =
        |what: &str, e: std::io::Error| StoreError::Unavailable(format!("{shown}: {what}: {e}"));
    // What a crash left in its place (a file, or a link someone put there) goes first; the new
    // one is created exclusively, which never follows a link.
    match fs::remove_file(temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail("cannot remove the old temporary file", e)),
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(temp).map_err(|e| fail("cannot write", e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| fail("cannot write", e))?;
    drop(file);
    fs::rename(temp, path).map_err(|e| fail("cannot replace", e))?;
    // The rename itself is durable once the directory is flushed.
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail("cannot flush its directory", e))?;
    }
    Ok(())
}
