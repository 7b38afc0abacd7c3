//! Micro-benchmarks of the hot paths: sealing and opening a chunk, chunk
//! decoding (signature check included), a durable storage append, and
//! version-vector comparison. `cargo bench -p synkro-bench`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use synkro_core::chunk::ChunkKind;
use synkro_core::crypto::SymmetricKey;
use synkro_core::{DeviceIdentity, DocId, OpHash, SealedChunk, VersionVector};
use synkro_storage::{FsStorage, Storage, WriteOp};

fn chunks(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let me = DeviceIdentity::generate(&mut rng);
    let key = SymmetricKey::generate(&mut rng);
    let (doc, key_id) = (DocId([7; 32]), OpHash([9; 32]));
    let mut group = c.benchmark_group("chunk");
    // A keystroke's change, a paragraph pasted, a snapshot-sized batch.
    for size in [64usize, 4 << 10, 256 << 10] {
        let plaintext = vec![0x5a; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", size), &plaintext, |b, p| {
            b.iter(|| SealedChunk::seal(&mut rng, &me, doc, 1, key_id, &key, ChunkKind::Changes, black_box(p)));
        });
        let sealed = SealedChunk::seal(&mut rng, &me, doc, 1, key_id, &key, ChunkKind::Changes, &plaintext);
        group.bench_with_input(BenchmarkId::new("decode+verify", size), sealed.encoded(), |b, bytes| {
            b.iter(|| SealedChunk::decode(black_box(bytes)).expect("valid"));
        });
        group.bench_with_input(BenchmarkId::new("open", size), &sealed, |b, s| {
            b.iter(|| s.open(&key).expect("right key"));
        });
    }
    group.finish();
}

fn version_vectors(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut group = c.benchmark_group("version vector");
    for authors in [2usize, 16, 256] {
        let ids: Vec<_> = (0..authors)
            .map(|_| DeviceIdentity::generate(&mut rng).member_id())
            .collect();
        let mut a = VersionVector::default();
        let mut b = VersionVector::default();
        for (i, id) in ids.iter().enumerate() {
            a.set(*id, 1000 + i as u64);
            b.set(*id, 1000 + i as u64 + (i % 2) as u64);
        }
        group.bench_function(BenchmarkId::new("dominates", authors), |bch| {
            bch.iter(|| black_box(&b).dominates(black_box(&a)));
        });
        group.bench_function(BenchmarkId::new("merge", authors), |bch| {
            bch.iter(|| {
                let mut m = a.clone();
                m.merge(black_box(&b));
                m
            });
        });
    }
    group.finish();
}

fn storage(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = FsStorage::open(dir.path()).expect("store");
    let mut group = c.benchmark_group("storage");
    group.sample_size(30);
    for size in [256usize, 16 << 10] {
        let mut n = 0u64;
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("fs append + fdatasync", size), |b| {
            b.iter(|| {
                n += 1;
                let op = WriteOp::Put {
                    key: n.to_be_bytes().to_vec(),
                    value: vec![1; size],
                };
                runtime.block_on(store.write(&[3; 32], vec![op])).expect("write");
            });
        });
    }
    group.finish();
}

criterion_group!(benches, chunks, version_vectors, storage);
criterion_main!(benches);
