//! Keep a repo's sealed records wherever you like: implement `Storage`
//! (atomic, durable writes; loads that never panic on damage) and open a
//! repo on it. This one keeps records in memory and logs every write, to
//! show what a repo stores: access-log ops, sealed change chunks and
//! snapshots — all ciphertext.
//!
//! `cargo run -p synkro --example custom-storage`

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::json;
use synkro::{DeviceIdentity, Repo, RepoConfig};
use synkro_storage::{Loaded, Namespace, Storage, StorageError, WriteOp};

/// One document's records, by key.
type Records = BTreeMap<Vec<u8>, Vec<u8>>;

/// Records by namespace (a document); a write applies all its ops or none.
#[derive(Default)]
struct LoggedStore {
    records: Mutex<HashMap<Namespace, Records>>,
}

#[async_trait::async_trait]
impl Storage for LoggedStore {
    async fn write(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        let mut all = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let records = all.entry(*ns).or_default();
        for op in ops {
            match op {
                WriteOp::Put { key, value } => {
                    let kind = match key.first() {
                        Some(b'L') => "access op",
                        Some(b'C') => "change chunk",
                        Some(b'S') => "snapshot",
                        _ => "local state",
                    };
                    println!("  put {kind}: {} bytes of ciphertext", value.len());
                    records.insert(key, value);
                }
                WriteOp::Delete { key } => {
                    println!("  delete a record compaction made redundant");
                    records.remove(&key);
                }
            }
        }
        Ok(())
    }

    async fn load(&self, ns: &Namespace) -> Result<Loaded, StorageError> {
        let all = self.records.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Loaded {
            records: all.get(ns).map(|r| r.clone().into_iter().collect()).unwrap_or_default(),
            problems: Vec::new(),
        })
    }

    async fn namespaces(&self) -> Result<Vec<Namespace>, StorageError> {
        let all = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Namespace> = all.keys().copied().collect();
        out.sort();
        Ok(out)
    }

    async fn remove(&self, ns: &Namespace) -> Result<(), StorageError> {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).remove(ns);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let store = Arc::new(LoggedStore::default());
    // Keep the identity somewhere safe too: it is the only key to the documents.
    let identity = DeviceIdentity::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
    let secret = identity.to_secret_bytes();

    println!("create a document:");
    let repo = Repo::open_with(store.clone(), identity, RepoConfig::default()).await?;
    let doc = repo.create().await?;
    println!("edit it and flush:");
    doc.set("title", &json!("Stored my way"))?;
    doc.flush().await?;
    let id = doc.id();
    repo.close().await?;

    println!("reopen from the same store:");
    let identity = DeviceIdentity::from_secret_bytes(&secret[..])?;
    let repo = Repo::open_with(store, identity, RepoConfig::default()).await?;
    println!("{}", repo.find(&id).await?.to_json()?);
    Ok(())
}
