//! Fault injection for the file backend: reliability suites arm a [`Fault`]
//! and the matching file-system call fails as a failing disk, a full disk
//! or a crash would make it fail. Only reachable with the
//! `fault-injection` feature; never enable it in production.
#![cfg_attr(not(feature = "fault-injection"), allow(dead_code))]

use std::io;

/// Which file-system call a [`Fault`] hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// Writing a frame to a log or to a compaction file.
    Write,
    /// `fsync`/`fdatasync` of a log, a compaction file or the directory.
    Sync,
    /// Renaming a compacted log over the old one.
    Rename,
}

/// How the call fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// An I/O error (EIO).
    Error,
    /// The disk is full (ENOSPC).
    NoSpace,
    /// Only for [`FaultPoint::Write`]: half of the bytes reach the file,
    /// then the process "dies": the store touches no file again (it acts
    /// poisoned) until it is dropped and reopened, as after a `kill -9`.
    Torn,
}

impl FaultKind {
    pub(crate) fn io_error(self, call: &str) -> io::Error {
        match self {
            FaultKind::Error => io::Error::other(format!("injected {call} failure")),
            FaultKind::NoSpace => io::Error::new(io::ErrorKind::StorageFull, format!("injected ENOSPC on {call}")),
            FaultKind::Torn => io::Error::other(format!("injected crash during {call}")),
        }
    }
}

/// One armed fault: the call at `point` that comes after `after` others of
/// its kind fails with `kind`; then the fault is spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The call to fail.
    pub point: FaultPoint,
    /// Calls of that kind to let through first.
    pub after: u32,
    /// How it fails.
    pub kind: FaultKind,
}

impl Fault {
    /// A fault at the `after + 1`-th next call of `point`.
    pub fn new(point: FaultPoint, after: u32, kind: FaultKind) -> Self {
        Self { point, after, kind }
    }
}

/// A fault counting down.
#[derive(Debug)]
pub(crate) struct Armed {
    fault: Fault,
    left: u32,
}

impl Armed {
    pub(crate) fn new(fault: Fault) -> Self {
        Self {
            fault,
            left: fault.after,
        }
    }

    /// Counts one call at `point`; true when this call must fail.
    pub(crate) fn tick(&mut self, point: FaultPoint) -> bool {
        if self.fault.point != point {
            return false;
        }
        match self.left.checked_sub(1) {
            Some(left) => {
                self.left = left;
                false
            }
            None => true,
        }
    }

    pub(crate) fn kind(&self) -> FaultKind {
        self.fault.kind
    }
}
