//! A log file written inside space it already holds, zeroed ahead of its end.
//!
//! Why: an appending write changes the file's size (and, at writeback, allocates
//! blocks), so every `fdatasync` of an appended file writes the inode as well as
//! the data: measured here (ext4 on a virtio disk) one sync of a 7 KB group cost
//! ~120 µs of CPU and three waits; written into blocks allocated and zeroed
//! before, ~75 µs and two (PostgreSQL zero-fills its WAL segments for the same
//! reason). The zeroed space is claimed [`CHUNK`] at a time, so the size changes
//! once per chunk, not once per group. Readers take a file's written part with
//! `qaqpa_certs::msglog::written` (no line holds a NUL byte).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Zeroed space claimed at a time.
const CHUNK: u64 = 1024 * 1024;
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

pub(super) struct Preallocated {
    file: File,
    /// Where the next write goes: the end of what was written and synced.
    end: u64,
    /// The file's size: written bytes, then zeros.
    allocated: u64,
    chunk: u64,
}

impl Preallocated {
    /// Opens (or creates) a file whose written part ends at `end`.
    pub(super) fn open(path: &Path, end: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).read(true).write(true).truncate(false).open(path)?;
        let allocated = file.metadata()?.len().max(end);
        Ok(Self { file, end, allocated, chunk: CHUNK })
    }

    /// Claims zeroed space in smaller steps (a journal that rewinds at each seal).
    pub(super) fn with_chunk(mut self, chunk: u64) -> Self {
        self.chunk = chunk.max(1);
        self
    }

    /// The end of what was written and synced.
    pub(super) fn end(&self) -> u64 {
        self.end
    }

    /// Writes `bytes` at the end, zeroing more space first when they do not fit;
    /// the end moves only in [`Self::advance`], after a sync.
    pub(super) fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let needed = self.end + bytes.len() as u64;
        if needed > self.allocated {
            let target = needed.div_ceil(self.chunk) * self.chunk;
            // A disk with room for the bytes but not for a whole chunk still
            // takes them: the write below grows the file as an append would.
            self.allocated = match self.zero(target) {
                Ok(()) => target,
                Err(_) => needed,
            };
        }
        self.file.write_all_at(bytes, self.end)
    }

    fn zero(&self, target: u64) -> std::io::Result<()> {
        let mut at = self.allocated;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            self.file.write_all_at(&ZEROS[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }

    /// Writes part of `bytes` and stops, as a full disk does (fault injection).
    pub(super) fn write_partly(&mut self, bytes: &[u8]) {
        let _ = self.file.write_all_at(&bytes[..bytes.len() / 2], self.end);
    }

    pub(super) fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// The synced write's bytes now count as written.
    pub(super) fn advance(&mut self, n: usize) {
        self.end += n as u64;
    }

    /// The next write starts at the beginning again (the journal after a seal:
    /// what it held names sealed records, which recovery ignores).
    pub(super) fn rewind(&mut self) {
        self.end = 0;
    }

    /// Cuts the file back to its written end, zeros and any unsynced bytes with
    /// them (a failed write is never retried in place), and syncs the cut.
    pub(super) fn cut_back(&mut self) -> std::io::Result<()> {
        self.file.set_len(self.end)?;
        self.allocated = self.end;
        self.file.sync_data()
    }

    /// Gives the unused zeroed space back (a segment that is full, or closed).
    pub(super) fn trim(&mut self) -> std::io::Result<()> {
        if self.allocated > self.end {
            self.file.set_len(self.end)?;
            self.allocated = self.end;
            self.file.sync_all()?;
        }
        Ok(())
    }
}
