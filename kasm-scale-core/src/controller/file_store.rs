//! [`FileStore`]: the records in one JSON file, for a single process without a database.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::records::Records;
use super::store::{StateStore, StoreError};

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
/// One process per file: two controllers saving to the same file overwrite each other (for
/// several replicas use a database store with a leader lease).
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
    /// Saves through one store (and its clones) run one at a time: they share the temporary
    /// file, and the last one started is the one kept.
    saving: std::sync::Arc<tokio::sync::Mutex<()>>,
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
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl StateStore for FileStore {
    async fn load(&self) -> Result<Option<Records>, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || load(&path))
            .await
            .map_err(|e| StoreError::Unavailable(format!("load: {e}")))?
    }

    async fn save(&self, records: &Records) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&Saved {
            format: FORMAT,
            records,
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot encode the records: {e}")))?;
        let path = self.path.clone();
        let _one_at_a_time = self.saving.lock().await;
        tokio::task::spawn_blocking(move || save(&path, &bytes))
            .await
            .map_err(|e| StoreError::Unavailable(format!("save: {e}")))?
    }
}

fn load(path: &Path) -> Result<Option<Records>, StoreError> {
    let shown = path.display();
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
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

fn save(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let shown = path.display();
    let fail =
        |what: &str, e: std::io::Error| StoreError::Unavailable(format!("{shown}: {what}: {e}"));
    let mut temp = path.as_os_str().to_owned();
    temp.push(".new");
    let temp = PathBuf::from(temp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temp).map_err(|e| fail("cannot write", e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| fail("cannot write", e))?;
    drop(file);
    fs::rename(&temp, path).map_err(|e| fail("cannot replace", e))?;
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
