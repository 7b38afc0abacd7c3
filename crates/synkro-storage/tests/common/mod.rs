//! Helpers shared by the integration tests.
// Each test binary uses a different subset of these.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use synkro_storage::{Loaded, Namespace, WriteOp};

pub mod contract;

pub const NS_A: Namespace = [0xAA; 32];
pub const NS_B: Namespace = [0x01; 32];

pub fn put(key: &[u8], value: &[u8]) -> WriteOp {
    WriteOp::Put {
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

pub fn del(key: &[u8]) -> WriteOp {
    WriteOp::Delete { key: key.to_vec() }
}

pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Applies `ops` to a plain map, the reference every backend must match.
pub fn apply(model: &mut Model, ops: &[WriteOp]) {
    for op in ops {
        match op {
            WriteOp::Put { key, value } => {
                model.insert(key.clone(), value.clone());
            }
            WriteOp::Delete { key } => {
                model.remove(key);
            }
        }
    }
}

pub fn records(model: &Model) -> Vec<(Vec<u8>, Vec<u8>)> {
    model.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Asserts a clean load that matches `model` exactly.
pub fn assert_clean(loaded: &Loaded, model: &Model) {
    assert!(loaded.problems.is_empty(), "unexpected problems: {:?}", loaded.problems);
    assert_eq!(loaded.records, records(model));
}

/// Small deterministic PRNG (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
