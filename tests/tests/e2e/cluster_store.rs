//! The cluster's document store against a real `nats-server`: the storage
//! contract every backend keeps (atomic writes, loads, namespaces,
//! removal), writes larger than a NATS message, compaction, damage, and an
//! outage.

use synkro_cluster::{Cluster, ClusterConfig, NatsStorage};

/// The contract every backend is held to, shared with synkro-storage's own tests.
#[path = "../../../crates/synkro-storage/tests/common/mod.rs"]
mod storage_contract;
use synkro_storage::{ProblemKind, Storage, StorageError, WriteOp};
use synkro_tests::Nats;

fn put(k: &[u8], v: &[u8]) -> WriteOp {
    WriteOp::Put {
        key: k.to_vec(),
        value: v.to_vec(),
    }
}

async fn store(nats: &Nats) -> anyhow::Result<NatsStorage> {
    let mut config = ClusterConfig::new([nats.url(0)]);
    config.connect_timeout = std::time::Duration::from_secs(2);
    Ok(Cluster::connect(config).await?.storage().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_the_contract_every_backend_keeps() -> anyhow::Result<()> {
    let nats = Nats::start(1)?;
    let s = store(&nats).await?;
    let model = storage_contract::contract::conformance(&s).await;
    // What was acknowledged is there for another client too.
    let other = store(&nats).await?;
    storage_contract::assert_clean(&other.load(&storage_contract::NS_A).await?, &model);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_load_list_and_remove_like_every_backend() -> anyhow::Result<()> {
    // Small messages, so that a 20 KiB write is sent in parts.
    let nats = Nats::start_with(1, "max_payload: 4096")?;
    let s = store(&nats).await?;
    let (a, b) = ([1u8; 32], [2u8; 32]);
    assert!(s.load(&a).await?.records.is_empty());
    s.write(&a, vec![put(b"k1", b"one"), put(b"k2", b"two")]).await?;
    s.write(&a, vec![WriteOp::Delete { key: b"k1".to_vec() }, put(b"k3", b"three")])
        .await?;
    let big = vec![7u8; 20 << 10];
    s.write(&b, vec![put(b"big", &big)]).await?;
    s.write(&a, vec![]).await?;
    assert!(matches!(
        s.write(&a, vec![put(b"", b"x")]).await,
        Err(StorageError::InvalidKey { len: 0 })
    ));

    let loaded = s.load(&a).await?;
    assert!(loaded.problems.is_empty());
    assert_eq!(
        loaded.records,
        vec![(b"k2".to_vec(), b"two".to_vec()), (b"k3".to_vec(), b"three".to_vec())]
    );
    assert_eq!(s.load(&b).await?.records, vec![(b"big".to_vec(), big)]);
    assert_eq!(s.namespaces().await?, vec![a, b]);

    s.remove(&a).await?;
    assert!(s.load(&a).await?.records.is_empty());
    assert_eq!(s.namespaces().await?, vec![b]);
    let gathered = s.gather(b"big").await?;
    assert_eq!(gathered.len(), 1);
    assert_eq!(gathered[0].value.as_ref().map(Vec::len), Some(20 << 10));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_log_is_rolled_up_when_read_and_keeps_its_records() -> anyhow::Result<()> {
    let nats = Nats::start(1)?;
    let s = store(&nats).await?;
    let ns = [3u8; 32];
    for i in 0..100u32 {
        s.write(
            &ns,
            vec![put(b"counter", &i.to_le_bytes()), put(&[b'k', (i % 5) as u8], b"v")],
        )
        .await?;
    }
    assert_eq!(nats.stream(0, "SYNKRO_DOCS")?["state"]["messages"], 100);
    let first = s.load(&ns).await?;
    assert_eq!(first.records.len(), 6);
    assert_eq!(
        nats.stream(0, "SYNKRO_DOCS")?["state"]["messages"],
        1,
        "one message replaces the log"
    );
    let again = s.load(&ns).await?;
    assert_eq!(again.records, first.records);
    s.write(&ns, vec![put(b"after", b"compaction")]).await?;
    assert_eq!(s.load(&ns).await?.records.len(), 7);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_messages_are_reported_and_the_rest_loads() -> anyhow::Result<()> {
    let nats = Nats::start(1)?;
    let s = store(&nats).await?;
    let ns = [4u8; 32];
    s.write(&ns, vec![put(b"good", b"1")]).await?;
    // Someone with access to NATS writes garbage into the document's log.
    let client = async_nats::connect(nats.url(0)).await?;
    let js = async_nats::jetstream::new(client);
    let subject = format!("synkro.docs.{}", "04".repeat(32));
    js.publish(subject, "not a frame".into()).await?.await?;
    s.write(&ns, vec![put(b"later", b"2")]).await?;
    let loaded = s.load(&ns).await?;
    assert_eq!(loaded.records.len(), 2, "{:?}", loaded.records);
    assert_eq!(loaded.problems.len(), 1);
    assert_eq!(loaded.problems[0].kind, ProblemKind::BadFrame);
    assert_eq!(loaded.problems[0].offset, 2, "its stream sequence");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_writes_as_unavailable_and_they_work_again_after() -> anyhow::Result<()> {
    let mut nats = Nats::start(1)?;
    let s = store(&nats).await?;
    let ns = [5u8; 32];
    s.write(&ns, vec![put(b"a", b"1")]).await?;
    nats.kill(0);
    let err = s.write(&ns, vec![put(b"b", b"2")]).await.expect_err("no server");
    assert!(err.is_transient(), "{err}");
    assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
    nats.restart(0)?;
    let mut written = Err(err);
    for _ in 0..100 {
        written = s.write(&ns, vec![put(b"b", b"2")]).await;
        if written.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    written?;
    assert_eq!(s.load(&ns).await?.records.len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gathering_reads_each_documents_last_write_and_reads_whole_only_what_it_must() -> anyhow::Result<()> {
    let nats = Nats::start(1)?;
    let s = store(&nats).await?;
    let n = 300u16;
    for i in 0..n {
        let mut ns = [0u8; 32];
        ns[..2].copy_from_slice(&i.to_be_bytes());
        s.write(&ns, vec![put(b"chunk", b"c"), put(b"index", &i.to_le_bytes())])
            .await?;
        s.write(&ns, vec![put(b"index", &(i + 1).to_le_bytes())]).await?;
        if i % 10 == 0 {
            // The last write does not touch the entry: that one is read whole.
            s.write(&ns, vec![put(b"other", b"o")]).await?;
        }
    }
    let started = std::time::Instant::now();
    let gathered = s.gather(b"index").await?;
    let took = started.elapsed();
    assert_eq!(gathered.len(), usize::from(n));
    for (i, g) in (0..n).zip(&gathered) {
        assert_eq!(g.value.as_deref(), Some(&(i + 1).to_le_bytes()[..]), "namespace {i}");
        assert!(g.problems.is_empty());
    }
    let started = std::time::Instant::now();
    for g in &gathered {
        s.load(&g.ns).await?;
    }
    eprintln!(
        "gather of {n} documents' index entries: {took:?}; reading each whole: {:?}",
        started.elapsed()
    );
    Ok(())
}

/// Two relays write one document at once: the one that had not heard the
/// other's write marks its own unsure, and a starting relay reads that
/// document whole instead of trusting its stale index entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_past_another_relays_unheard_write_is_read_whole_at_start() -> anyhow::Result<()> {
    let nats = Nats::start(1)?;
    let (a, b) = (store(&nats).await?, store(&nats).await?);
    let ns = [7u8; 32];
    let entry = async |key: &[u8]| -> anyhow::Result<Option<Vec<u8>>> {
        let fresh = store(&nats).await?;
        let gathered = fresh.gather(key).await?;
        let g = gathered.iter().find(|g| g.ns == ns).expect("listed");
        assert!(g.problems.is_empty());
        Ok(g.value.clone())
    };

    a.write(&ns, vec![put(b"c1", b"1"), put(b"index", b"a1")]).await?;
    assert_eq!(entry(b"index").await?.as_deref(), Some(&b"a1"[..]), "a new document");
    b.load(&ns).await?;
    b.write(&ns, vec![put(b"c2", b"2"), put(b"index", b"b2")]).await?;
    assert_eq!(
        entry(b"index").await?.as_deref(),
        Some(&b"b2"[..]),
        "b held all before it"
    );

    // A has not taken B's write: its entry would miss c2.
    a.write(&ns, vec![put(b"c3", b"3"), put(b"index", b"a3")]).await?;
    assert_eq!(entry(b"index").await?, None, "read whole: the last entry may be stale");
    let loaded = a.load(&ns).await?;
    let keys: Vec<&[u8]> = loaded.records.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [&b"c1"[..], b"c2", b"c3", b"index"], "every record is kept");

    // Another relay read the log, then B writes again: until its repo has
    // taken that write, its own are unsure; once it has, they are sure.
    let c = store(&nats).await?;
    c.load(&ns).await?;
    let mut heard = c.watch().await?;
    b.write(&ns, vec![put(b"c4", b"4"), put(b"index", b"b4")]).await?;
    let w = tokio::time::timeout(std::time::Duration::from_secs(10), heard.next())
        .await?
        .expect("watching")?;
    assert_eq!(w.ns, ns);
    c.write(&ns, vec![put(b"c5", b"5"), put(b"index", b"c5")]).await?;
    assert_eq!(entry(b"index").await?, None, "written before its repo took c4");
    heard.taken(&w.ns, w.seq);
    c.write(&ns, vec![put(b"c6", b"6"), put(b"index", b"c6")]).await?;
    assert_eq!(entry(b"index").await?.as_deref(), Some(&b"c6"[..]), "sure once taken");
    Ok(())
}
