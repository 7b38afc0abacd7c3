//! [`FsBlobs`]: blob items as files, one directory per document.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{hex, io_err, parse_hex, run_blocking};
use crate::blobs::{BlobKey, BlobKind, BlobStore, check_items};
use crate::{MAX_VALUE_LEN, Namespace, StorageError};

/// Prefix of a file being written (removed when found later).
const TMP_PREFIX: &str = ".tmp-";

/// A [`BlobStore`] in a directory (native only).
///
/// Layout: `<dir>/<64 hex digits of the document>/c<64 hex digits>` for a
/// chunk and `m<…>` for a manifest. Items are immutable: each is written to
/// a temporary file, `fsync`ed and renamed into place, and the document's
/// directory is `fsync`ed before [`put`](BlobStore::put) returns, so an
/// item is either whole under its name or absent. Reads are bounded by
/// [`MAX_VALUE_LEN`]; bytes damaged on disk are not detected here but by
/// the reader, which checks every item against the hash that names it.
///
/// ```
/// use synkro_storage::{BlobKey, BlobStore, FsBlobs};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// rt.block_on(async {
///     let (doc, key) = ([1u8; 32], BlobKey::chunk([2; 32]));
///     FsBlobs::open(dir.path())?.put(&doc, vec![(key, b"sealed".to_vec())]).await?;
///     // Reopened, as after a restart:
///     let blobs = FsBlobs::open(dir.path())?;
///     assert_eq!(blobs.get(&doc, &key).await?, Some(b"sealed".to_vec()));
///     assert_eq!(blobs.list(&doc).await?, vec![key]);
///     Ok::<_, synkro_storage::StorageError>(())
/// })?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct FsBlobs {
    dir: PathBuf,
}

impl FsBlobs {
    /// Opens (creating it if needed) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StorageError> {
        let dir = dir.as_ref().to_owned();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(Self { dir })
    }

    fn doc_dir(&self, doc: &Namespace) -> PathBuf {
        self.dir.join(hex(doc))
    }
}

fn file_name(key: &BlobKey) -> String {
    let kind = match key.kind {
        BlobKind::Chunk => 'c',
        BlobKind::Manifest => 'm',
    };
    format!("{kind}{}", hex(&key.id))
}

fn parse_name(name: &str) -> Option<BlobKey> {
    let kind = match name.get(..1)? {
        "c" => BlobKind::Chunk,
        "m" => BlobKind::Manifest,
        _ => return None,
    };
    Some(BlobKey {
        kind,
        id: parse_hex(name.get(1..)?)?,
    })
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))?;
    Ok(())
}

/// Reads `path` whole, if it is there and not larger than a value may be.
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_VALUE_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() > MAX_VALUE_LEN {
        return Err(StorageError::TooLarge {
            len: bytes.len(),
            max: MAX_VALUE_LEN,
        });
    }
    Ok(Some(bytes))
}

#[async_trait::async_trait]
impl BlobStore for FsBlobs {
    async fn put(&self, doc: &Namespace, items: Vec<(BlobKey, Vec<u8>)>) -> Result<(), StorageError> {
        check_items(&items)?;
        if items.is_empty() {
            return Ok(());
        }
        let (root, dir) = (self.dir.clone(), self.doc_dir(doc));
        run_blocking(move || {
            let created = !dir.exists();
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            for (key, value) in items {
                let name = file_name(&key);
                let path = dir.join(&name);
                // Held already (the same bytes: the name is their hash).
                if fs::metadata(&path).is_ok_and(|m| m.len() == value.len() as u64) {
                    continue;
                }
                let tmp = dir.join(format!("{TMP_PREFIX}{name}"));
                let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
                file.write_all(&value).map_err(io_err(&tmp))?;
                file.sync_data().map_err(io_err(&tmp))?;
                fs::rename(&tmp, &path).map_err(io_err(&path))?;
            }
            sync_dir(&dir)?;
            if created {
                sync_dir(&root)?;
            }
            Ok(())
        })
        .await
    }

    async fn get(&self, doc: &Namespace, key: &BlobKey) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.doc_dir(doc).join(file_name(key));
        run_blocking(move || read_bounded(&path)).await
    }

    async fn has(&self, doc: &Namespace, keys: &[BlobKey]) -> Result<Vec<bool>, StorageError> {
        let dir = self.doc_dir(doc);
        let keys = keys.to_vec();
        run_blocking(move || Ok(keys.iter().map(|k| dir.join(file_name(k)).exists()).collect())).await
    }

    async fn list(&self, doc: &Namespace) -> Result<Vec<BlobKey>, StorageError> {
        let dir = self.doc_dir(doc);
        run_blocking(move || {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io_err(&dir)(e)),
            };
            let mut keys = Vec::new();
            for entry in entries {
                let entry = entry.map_err(io_err(&dir))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with(TMP_PREFIX) {
                    // Left by a write that did not finish: never acknowledged.
                    let path = entry.path();
                    fs::remove_file(&path).map_err(io_err(&path))?;
                } else if let Some(key) = parse_name(name) {
                    keys.push(key);
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
    }

    async fn remove(&self, doc: &Namespace, keys: &[BlobKey]) -> Result<(), StorageError> {
        let dir = self.doc_dir(doc);
        let keys = keys.to_vec();
        run_blocking(move || {
            let mut removed = false;
            for key in keys {
                let path = dir.join(file_name(&key));
                match fs::remove_file(&path) {
                    Ok(()) => removed = true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&path)(e)),
                }
            }
            if removed {
                sync_dir(&dir)?;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for key in [BlobKey::chunk([7; 32]), BlobKey::manifest([0xab; 32])] {
            assert_eq!(parse_name(&file_name(&key)), Some(key));
        }
        assert_eq!(parse_name("x0000"), None);
        assert_eq!(parse_name(""), None);
    }
}
