//! Standard output of every subcommand.
//!
//! `println!` panics when stdout is closed (`kasm-scale simulate | head -1`). Every subcommand
//! writes through [`Stdout`] instead: once the reader has gone (a broken pipe), the rest of the
//! output is dropped without a word and the command ends with the status it would have had;
//! any other write error is reported once, at the end, with exit status 2.

use std::fmt::Display;
use std::io::{self, Write};
use std::process::ExitCode;

/// The command's standard output.
#[derive(Debug, Default)]
pub struct Stdout {
    /// The reader has gone: nothing more is written.
    closed: bool,
    /// A write failed for another reason than a broken pipe.
    error: Option<io::Error>,
}

impl Stdout {
    /// Standard output, not written to yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `text` and a newline.
    pub fn line(&mut self, text: impl Display) {
        self.write_with(|out| writeln!(out, "{text}"));
    }

    /// Writes `text` as it is.
    pub fn text(&mut self, text: &str) {
        self.write_with(|out| out.write_all(text.as_bytes()));
    }

    fn write_with(&mut self, write: impl FnOnce(&mut io::StdoutLock<'static>) -> io::Result<()>) {
        if self.closed || self.error.is_some() {
            return;
        }
        let result = write(&mut io::stdout().lock());
        self.note(result);
    }

    fn note(&mut self, result: io::Result<()>) {
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => self.closed = true,
            Err(e) => self.error = Some(e),
        }
    }

    /// Flushes the output and returns `status`, or exit status 2 with a message on stderr when a
    /// write failed for another reason than a reader that went away.
    pub fn finish(mut self, status: ExitCode) -> ExitCode {
        if !self.closed && self.error.is_none() {
            let flushed = io::stdout().lock().flush();
            self.note(flushed);
        }
        match self.error {
            Some(e) => {
                eprintln!("cannot write the output: {e}");
                ExitCode::from(2)
            }
            None => status,
        }
    }
}
