//! Compaction: a log rewritten with only its live records, beside it, then
//! renamed over it, so a crash at any point leaves one whole log.

use super::*;

/// Compact only once this many bytes are dead, so small logs are left alone.
pub(super) const COMPACT_MIN_DEAD: u64 = 64 << 10;
/// Compaction packs records into frames of about this size, so a rewrite
/// never needs one frame larger than `MAX_WRITE_LEN`.
const COMPACT_FRAME_TARGET: usize = 1 << 20;

impl Inner {
    /// Rewrites `log` with only its live records. Returns the new log, or
    /// the old one if compaction failed harmlessly (it is retried on a later
    /// write). Errors only when poisoned.
    pub(super) fn compact(&self, path: &Path, file: &File, log: LogFile) -> Result<LogFile, StorageError> {
        let tmp = path.with_extension(&TMP_SUFFIX[1..]);
        let new = match self.write_compacted(path, file, &tmp, &log) {
            Ok(new) => new,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                if matches!(e, StorageError::Poisoned) {
                    return Err(e);
                }
                tracing::warn!(path = %path.display(), error = %e, "storage log compaction failed; will retry later");
                return Ok(log);
            }
        };
        if let Err(e) = self.rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            tracing::warn!(path = %path.display(), error = %e, "storage log compaction failed; will retry later");
            return Ok(log);
        }
        // From here the path names the new file.
        self.sync_dir()?;
        Ok(new)
    }

    fn write_compacted(&self, path: &Path, old: &File, tmp: &Path, log: &LogFile) -> Result<LogFile, StorageError> {
        let buf = read_all(old, path)?;
        let scan = scan(&buf);
        if !scan.problems.is_empty() {
            tracing::warn!(
                path = %path.display(),
                problems = scan.problems.len(),
                "compacting a damaged storage log: damaged frames are dropped"
            );
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(io_err(tmp))?;
        let mut end = 0u64;
        let mut frame = FrameBuilder::new(COMPACT_FRAME_TARGET);
        for (key, value) in &scan.live {
            let size = PUT_OVERHEAD + key.len() + value.len();
            if frame.count > 0 && frame.payload_len() + size > COMPACT_FRAME_TARGET {
                let bytes = std::mem::replace(&mut frame, FrameBuilder::new(COMPACT_FRAME_TARGET)).finish()?;
                self.append(&file, end, &bytes).map_err(io_err(tmp))?;
                end = end.saturating_add(to_u64(bytes.len()));
            }
            frame.put(key, value)?;
        }
        if frame.count > 0 {
            let bytes = frame.finish()?;
            self.append(&file, end, &bytes).map_err(io_err(tmp))?;
            end = end.saturating_add(to_u64(bytes.len()));
        }
        self.sync_file(&file, tmp)?;
        let new = LogFile::of(end, &scan);
        if new.index.len() != log.index.len() || new.live != log.live {
            tracing::warn!(path = %path.display(), "storage log changed on disk since it was opened");
        }
        Ok(new)
    }
}
