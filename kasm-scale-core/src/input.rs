//! Reading the files kasm-scale takes as input: configurations, demand traces, plan states and
//! templates.
//!
//! [`read_input_file`] is the one way they are read. It refuses what is not a regular file
//! (after following symlinks: `/dev/zero`, a FIFO, a directory) before opening it, and a file
//! larger than [`MAX_INPUT_FILE_BYTES`], so that a wrong path cannot make a command read
//! without end or hold gigabytes in memory.

use std::fmt;
use std::fs::{File, FileType};
use std::io::{self, Read};
use std::path::Path;

/// The largest input file kasm-scale reads: 16 MiB. Configurations, traces and states are a few
/// kilobytes to a few megabytes; a startup script is at most 64 KiB once rendered.
pub const MAX_INPUT_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads the UTF-8 text file at `path` (symlinks followed). Refuses, with an
/// [`io::ErrorKind::InvalidInput`] error whose message says why and names the limit, a path that
/// is not a regular file and a file over [`MAX_INPUT_FILE_BYTES`]; a file that grows past the
/// limit while it is read is refused too. The error does not repeat the path: callers put it
/// in front (`FILE: cannot read: …`).
pub fn read_input_file(path: impl AsRef<Path>) -> io::Result<String> {
    read_limited(path.as_ref(), MAX_INPUT_FILE_BYTES)
}

fn read_limited(path: &Path, limit: u64) -> io::Result<String> {
    // Checked before opening: opening a FIFO waits for a writer.
    let metadata = std::fs::metadata(path)?;
    check(&metadata, limit)?;
    let file = File::open(path)?;
    // The path may have changed between the two calls: check what was opened.
    let metadata = file.metadata()?;
    check(&metadata, limit)?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(None, limit));
    }
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

fn check(metadata: &std::fs::Metadata, limit: u64) -> io::Result<()> {
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "not a regular file ({}); kasm-scale reads only regular files",
                Kind(metadata.file_type())
            ),
        ));
    }
    if metadata.len() > limit {
        return Err(too_large(Some(metadata.len()), limit));
    }
    Ok(())
}

fn too_large(size: Option<u64>, limit: u64) -> io::Error {
    let size = match size {
        Some(n) => format!("{n} bytes"),
        None => "more bytes".to_owned(),
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{size}, over the {} MiB ({limit}-byte) limit for input files",
            limit / (1024 * 1024)
        ),
    )
}

/// What a file type is, in words.
struct Kind(FileType);

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if t.is_fifo() {
                return f.write_str("a FIFO");
            }
            if t.is_char_device() {
                return f.write_str("a character device");
            }
            if t.is_block_device() {
                return f.write_str("a block device");
            }
            if t.is_socket() {
                return f.write_str("a socket");
            }
        }
        if t.is_dir() {
            f.write_str("a directory")
        } else {
            f.write_str("not a file")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file_up_to_the_limit_and_refuses_one_byte_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        std::fs::write(&path, "abcd").unwrap();
        assert_eq!(read_limited(&path, 4).unwrap(), "abcd");
        let e = read_limited(&path, 3).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            e.to_string(),
            "4 bytes, over the 0 MiB (3-byte) limit for input files"
        );
        let e = read_limited(dir.path(), 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "not a regular file (a directory); kasm-scale reads only regular files"
        );
        std::fs::write(&path, b"ok\xff").unwrap();
        let e = read_limited(&path, 10).unwrap_err();
        assert_eq!(e.to_string(), "not UTF-8 text (invalid byte at offset 2)");
    }
}
