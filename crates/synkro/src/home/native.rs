//! The on-disk home of a repo: identity file, lock, document storage.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use getrandom::SysRng;
use rand_core::UnwrapErr;
use synkro_core::DeviceIdentity;
use synkro_core::identity::IDENTITY_SECRET_LEN;
use synkro_storage::{FsBlobs, FsStorage};

use crate::Error;

const IDENTITY_FILE: &str = "identity.key";
const LOCK_FILE: &str = "lock";
const DOCS_DIR: &str = "docs";
const BLOBS_DIR: &str = "blobs";

/// An open home directory; holds its lock until dropped.
pub(crate) struct Home {
    dir: PathBuf,
    _lock: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

impl Home {
    pub fn open(dir: &Path) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        }
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(Error::HomeInUse(dir.to_owned())),
            Err(fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        Ok(Self {
            dir: dir.to_owned(),
            _lock: lock,
        })
    }

    /// Read the device identity, creating it on first use. A damaged file
    /// is an error, never silently replaced: it is the device's only key.
    pub fn identity(&self) -> Result<DeviceIdentity, Error> {
        let path = self.dir.join(IDENTITY_FILE);
        match fs::read(&path) {
            Ok(bytes) => DeviceIdentity::from_secret_bytes(&bytes).map_err(|e| Error::Identity {
                path: path.clone(),
                reason: format!("{e}; restore it from a backup (it is not recreated, to avoid losing access)"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = DeviceIdentity::generate(&mut UnwrapErr(SysRng));
                write_secret(&self.dir, &path, &id.to_secret_bytes()[..])?;
                Ok(id)
            }
            Err(e) => Err(io(&path)(e)),
        }
    }

    pub fn storage(&self) -> Result<FsStorage, Error> {
        Ok(FsStorage::open(self.dir.join(DOCS_DIR))?)
    }

    /// Attached files' chunks and manifests.
    pub fn blobs(&self) -> Result<FsBlobs, Error> {
        Ok(FsBlobs::open(self.dir.join(BLOBS_DIR))?)
    }
}

/// Write a 0600 file atomically and durably: temp file, fsync, rename, fsync dir.
fn write_secret(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    debug_assert_eq!(bytes.len(), IDENTITY_SECRET_LEN);
    let tmp = path.with_extension("tmp");
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(())
}
