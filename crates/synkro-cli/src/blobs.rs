//! `synkro attach` and `synkro blob`: files attached to documents.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use futures::io::AllowStdIo;
use indicatif::{ProgressBar, ProgressStyle};
use synkro::{BlobMeta, BlobRef, DocHandle, Repo};

/// Attach `file` to `doc` and store its reference at `path`; prints it.
pub async fn attach(doc: &DocHandle, path: &str, file: &Path, mime: Option<String>) -> anyhow::Result<()> {
    let opened = fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let size = opened.metadata().map(|m| m.len()).unwrap_or(0);
    let meta = BlobMeta {
        mime: mime.unwrap_or_else(|| "application/octet-stream".into()),
        name: file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let bar = progress_bar(format!("attaching {}", file.display()), size);
    // The file is read in place: this command has nothing else to do meanwhile.
    let blob = doc
        .attach_with_progress(AllowStdIo::new(opened), meta, |read| bar.set_position(read))
        .await;
    bar.finish_and_clear();
    let blob = blob?;
    let value = serde_json::to_value(&blob)?;
    doc.set(path, &value)?;
    doc.flush().await?;
    out!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

/// Write the file whose reference is at `path` in `doc` to `out`.
pub async fn save(repo: &Repo, doc: &DocHandle, path: &str, out: &Path, force: bool) -> anyhow::Result<()> {
    let value = doc
        .get(path)?
        .with_context(|| format!("nothing at {path:?} in {}", doc.id()))?;
    let blob: BlobRef = serde_json::from_value(value)
        .map_err(|e| crate::usage(format!("the value at {path:?} is not an attached file ({e})")))?;
    if out.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", out.display());
    }
    let mut reading = repo.blob(&blob).await?;
    let (dir, tmp) = crate::temp_beside(out)?;
    let bar = progress_bar(format!("writing {}", out.display()), blob.size);
    let written = async {
        let mut file = fs::File::create(&tmp)?;
        while let Some(chunk) = reading.next_chunk().await? {
            file.write_all(&chunk)?;
            bar.set_position(reading.read());
        }
        file.sync_all()?;
        fs::rename(&tmp, out)?;
        fs::File::open(dir)?.sync_all()?;
        anyhow::Ok(())
    }
    .await;
    bar.finish_and_clear();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", out.display())));
    }
    eprintln!("wrote {} ({} bytes, {})", out.display(), blob.size, blob.mime);
    Ok(())
}

fn progress_bar(message: String, len: u64) -> ProgressBar {
    // Drawn only when stderr is a terminal.
    let bar = ProgressBar::new(len).with_message(message);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
