//! `synkro`: end-to-end encrypted, local-first documents from the shell.
//!
//! Every command opens the repo in `--home` (default `$SYNKRO_HOME`, else
//! the OS data directory), does one thing, makes it durable and exits.
//! Commands that print an id print it as their last line. Errors go to
//! stderr as one `error: …` line; exit code 2 means the arguments were
//! wrong, 1 that the operation failed. A failed command changes nothing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value as Json, json};
use synkro::net::NetConfig;
use synkro::{DocHandle, DocId, InviteToken, MemberId, Repo, Role};

/// `println!` that fails instead of panicking when stdout is gone (a
/// reader such as `head` closed the pipe); `main` then exits quietly.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err(anyhow::Error::from)?
    }};
}

mod blobs;
mod sync;

#[derive(Parser)]
#[command(
    name = "synkro",
    version,
    about = "Local-first, end-to-end encrypted documents that sync"
)]
struct Cli {
    /// Repo directory (device identity and documents).
    #[arg(long, global = true, env = "SYNKRO_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create this device's identity (once); prints its member id.
    Init,
    /// Create a document; prints its id.
    New {
        /// A local name for the document.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the documents on this device.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Set PATH (like meta/title or items/0) to a JSON value.
    Set {
        /// Document id (or a unique prefix of one).
        doc: String,
        /// Slash path; numeric segments index lists; missing maps are created.
        path: String,
        /// JSON value, e.g. '"text"', 42, '{"a": [1, 2]}'.
        json: String,
    },
    /// Print the document (or the value at PATH) as JSON.
    Get {
        /// Document id (or a unique prefix of one).
        doc: String,
        /// Slash path.
        path: Option<String>,
    },
    /// Remove the value at PATH.
    Delete {
        /// Document id (or a unique prefix of one).
        doc: String,
        /// Slash path.
        path: String,
    },
    /// Members, roles, version vector and size of a document.
    Info {
        /// Document id (or a unique prefix of one).
        doc: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Invite someone; prints a secret token (send it privately).
    Share {
        /// Document id (or a unique prefix of one).
        doc: String,
        /// Role the invitee gets.
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Join a document with an invitation token; prints the document id.
    Join {
        /// The `synkro1…` token.
        token: String,
    },
    /// Remove a member and rotate the document key.
    Revoke {
        /// Document id (or a unique prefix of one).
        doc: String,
        /// Member id (see `info`).
        member: String,
    },
    /// Write an encrypted backup of a document to FILE.
    Export {
        /// Document id (or a unique prefix of one).
        doc: String,
        /// Backup file to write.
        file: PathBuf,
        /// Name of the environment variable holding the passphrase.
        #[arg(long, value_name = "VAR")]
        passphrase_env: String,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Sync with a relay (and/or peers): with --once, push everything until
    /// it is durable there and pull what is missing, then exit; without,
    /// stay connected and sync live until Ctrl-C.
    Sync {
        /// Relay address, ending in /p2p/<relay id> (repeatable).
        #[arg(long, value_name = "MULTIADDR")]
        relay: Vec<String>,
        /// Peer address, e.g. one printed by `synkro serve` (repeatable).
        #[arg(long, value_name = "MULTIADDR")]
        peer: Vec<String>,
        /// Sync once and exit.
        #[arg(long)]
        once: bool,
        /// With --once: give up after this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 120)]
        timeout: u64,
    },
    /// Serve this device's documents to peers that dial it directly, find it
    /// on the LAN (mDNS) or reach it through relays; prints its addresses.
    Serve {
        /// Address to listen on (repeatable; default all interfaces, TCP and QUIC, any port).
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// Relay to stay reachable through (repeatable).
        #[arg(long, value_name = "MULTIADDR")]
        relay: Vec<String>,
        /// Do not announce or look for peers on the LAN.
        #[arg(long)]
        no_mdns: bool,
    },
    /// Make a new document from a file Automerge saved (`Automerge.save()`,
    /// an automerge-repo export), history included; prints its id.
    ImportAutomerge {
        /// The Automerge file.
        file: PathBuf,
        /// Local name for the new document.
        #[arg(long)]
        name: Option<String>,
    },
    /// Write a document as a plain Automerge file (`Automerge.load()` opens
    /// it), history included. Unencrypted: it leaves access control.
    ExportAutomerge {
        /// Document id (or a unique prefix of one).
        doc: String,
        /// File to write.
        file: PathBuf,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Attach FILE to a document and store its reference (a JSON object
    /// with its id, size, type and name) at PATH; prints the reference. The
    /// file is encrypted in chunks and kept out of the document's history.
    Attach {
        /// Document id (or a unique prefix of one).
        doc: String,
        /// Slash path where the reference goes, e.g. tasks/0/photo.
        path: String,
        /// The file.
        file: PathBuf,
        /// Its media type (default application/octet-stream).
        #[arg(long)]
        mime: Option<String>,
    },
    /// Write the file attached at PATH of a document to OUT.
    Blob {
        /// Document id (or a unique prefix of one).
        doc: String,
        /// Slash path of the reference `attach` stored.
        path: String,
        /// File to write.
        out: PathBuf,
        /// Overwrite OUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Restore a backup on this device; prints the document id.
    Import {
        /// Backup file.
        file: PathBuf,
        /// Name of the environment variable holding the passphrase.
        #[arg(long, value_name = "VAR")]
        passphrase_env: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s.parse::<Role>() {
        Ok(Role::Replicate) => Err("replicate is for relays; share read, write or admin".into()),
        other => other,
    }
}

/// Wrong arguments (exit 2) as opposed to a failed operation (exit 1).
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    Usage(msg.into()).into()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            // Whoever read stdout stopped reading (`synkro get … | head`).
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.is::<Usage>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn home_dir(home: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match home {
        Some(h) => Ok(h),
        None => directories::ProjectDirs::from("", "", "synkro")
            .map(|d| d.data_dir().to_owned())
            .context("no home directory found; pass --home DIR or set SYNKRO_HOME"),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let home = home_dir(cli.home)?;
    // Check arguments that need no repo before taking the repo's lock.
    let early = match &cli.command {
        Command::Set { json, .. } => Some(parse_json(json).map(|_| ())),
        Command::Join { token } => Some(parse_token(token).map(|_| ())),
        Command::Revoke { member, .. } => Some(parse_member(member).map(|_| ())),
        Command::Export { passphrase_env, .. } | Command::Import { passphrase_env, .. } => {
            Some(passphrase(passphrase_env).map(|_| ()))
        }
        Command::Sync { relay, peer, .. } => Some(
            sync::parse_addrs("relay", relay)
                .and_then(|_| sync::parse_addrs("peer", peer))
                .and_then(|_| {
                    if relay.is_empty() && peer.is_empty() {
                        Err(usage("give a --relay or a --peer to sync with"))
                    } else {
                        Ok(())
                    }
                }),
        ),
        Command::Serve { listen, relay, .. } => Some(
            sync::parse_addrs("listen", listen)
                .and_then(|_| sync::parse_addrs("relay", relay))
                .map(|_| ()),
        ),
        _ => None,
    };
    if let Some(r) = early {
        r?;
    }
    let repo = Repo::open(&home)
        .await
        .with_context(|| format!("cannot open the repo in {}", home.display()))?;
    match cli.command {
        Command::Init => out!("{}", repo.member_id()),
        Command::New { name } => {
            let doc = repo.create().await?;
            if name.is_some() {
                doc.set_name(name).await?;
            }
            out!("{}", doc.id());
        }
        Command::List { json } => list(&repo, json)?,
        Command::Set { doc, path, json } => {
            let doc = find(&repo, &doc).await?;
            doc.set(&path, &parse_json(&json)?)?;
            doc.flush().await?;
        }
        Command::Get { doc, path } => {
            let doc = find(&repo, &doc).await?;
            let value = match path {
                None => doc.to_json()?,
                Some(p) => doc
                    .get(&p)?
                    .with_context(|| format!("nothing at {p:?} in {}", doc.id()))?,
            };
            out!("{}", serde_json::to_string_pretty(&value)?);
        }
        Command::Delete { doc, path } => {
            let doc = find(&repo, &doc).await?;
            doc.delete(&path)?;
            doc.flush().await?;
        }
        Command::Info { doc, json } => info(&find(&repo, &doc).await?, json)?,
        Command::Share { doc, role } => {
            let token = find(&repo, &doc).await?.share(role).await?;
            out!("{token}");
        }
        Command::Join { token } => {
            let doc = repo.join(&parse_token(&token)?).await?;
            eprintln!("joined; the content arrives when this device syncs with a peer or relay that has it");
            out!("{}", doc.id());
        }
        Command::Revoke { doc, member } => {
            let doc = find(&repo, &doc).await?;
            doc.revoke(parse_member(&member)?).await?;
        }
        Command::Export {
            doc,
            file,
            passphrase_env,
            force,
        } => {
            let doc = find(&repo, &doc).await?;
            if file.exists() && !force {
                bail!("{} exists; pass --force to overwrite it", file.display());
            }
            let bytes = doc.export(passphrase(&passphrase_env)?.as_bytes()).await?;
            write_atomically(&file, &bytes)?;
            eprintln!("wrote {} ({} bytes)", file.display(), bytes.len());
        }
        Command::ImportAutomerge { file, name } => {
            let bytes = fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let doc = repo.import_automerge(&bytes).await?;
            if name.is_some() {
                doc.set_name(name).await?;
            }
            out!("{}", doc.id());
        }
        Command::ExportAutomerge { doc, file, force } => {
            let doc = find(&repo, &doc).await?;
            if file.exists() && !force {
                bail!("{} exists; pass --force to overwrite it", file.display());
            }
            let bytes = doc.export_automerge()?;
            write_atomically(&file, &bytes)?;
            eprintln!("wrote {} ({} bytes, plain Automerge)", file.display(), bytes.len());
        }
        Command::Import { file, passphrase_env } => {
            let bytes = fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let doc = repo.import(&bytes, passphrase(&passphrase_env)?.as_bytes()).await?;
            out!("{}", doc.id());
        }
        Command::Attach { doc, path, file, mime } => {
            blobs::attach(&find(&repo, &doc).await?, &path, &file, mime).await?;
        }
        Command::Blob { doc, path, out, force } => {
            blobs::save(&repo, &find(&repo, &doc).await?, &path, &out, force).await?;
        }
        Command::Sync {
            relay,
            peer,
            once,
            timeout,
        } => {
            let (relays, peers) = (sync::parse_addrs("relay", &relay)?, sync::parse_addrs("peer", &peer)?);
            if once {
                sync::once(&repo, relays, peers, Duration::from_secs(timeout)).await?;
            } else {
                let config = NetConfig {
                    relays,
                    peers,
                    reachable_via_relays: true,
                    ..NetConfig::default()
                };
                sync::live(&repo, config, false).await?;
            }
        }
        Command::Serve { listen, relay, no_mdns } => {
            let mut listen = sync::parse_addrs("listen", &listen)?;
            if listen.is_empty() {
                listen = sync::parse_addrs(
                    "listen",
                    &["/ip4/0.0.0.0/tcp/0".into(), "/ip4/0.0.0.0/udp/0/quic-v1".into()],
                )?;
            }
            let config = NetConfig {
                listen,
                relays: sync::parse_addrs("relay", &relay)?,
                reachable_via_relays: true,
                mdns: !no_mdns,
                ..NetConfig::default()
            };
            sync::live(&repo, config, true).await?;
        }
    }
    repo.flush_all().await?;
    Ok(())
}

fn parse_json(text: &str) -> anyhow::Result<Json> {
    serde_json::from_str(text).map_err(|e| usage(format!("not valid JSON ({e}); strings need quotes, e.g. '\"milk\"'")))
}

fn parse_token(text: &str) -> anyhow::Result<InviteToken> {
    text.parse::<InviteToken>()
        .map_err(|e| usage(format!("{e}; paste the whole token printed by `synkro share`")))
}

fn parse_member(text: &str) -> anyhow::Result<MemberId> {
    text.parse::<MemberId>()
        .map_err(|e| usage(format!("{e}; `synkro info DOC` lists member ids")))
}

fn passphrase(var: &str) -> anyhow::Result<String> {
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => Ok(p),
        Ok(_) => Err(usage(format!(
            "environment variable {var} is empty; it must hold the passphrase"
        ))),
        Err(_) => Err(usage(format!(
            "environment variable {var} is not set; it must hold the passphrase"
        ))),
    }
}

/// A full id, or a prefix matching exactly one document on this device.
async fn find(repo: &Repo, text: &str) -> anyhow::Result<DocHandle> {
    if let Ok(id) = text.parse::<DocId>() {
        return Ok(repo.find(&id).await?);
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(usage("empty document id"));
    }
    let matches: Vec<DocId> = repo
        .list()
        .into_iter()
        .filter(|d| d.to_string().starts_with(text))
        .collect();
    match matches.as_slice() {
        [one] => Ok(repo.find(one).await?),
        [] => bail!("no document {text:?} on this device; `synkro list` shows them"),
        _ => Err(usage(format!(
            "{text:?} matches {} documents; give more of the id",
            matches.len()
        ))),
    }
}

fn list(repo: &Repo, as_json: bool) -> anyhow::Result<()> {
    use serde::ser::{SerializeSeq, Serializer};
    use std::io::Write as _;
    // From the index, one document at a time, written as it comes: a home
    // may hold 100,000.
    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
    let ids = repo.list();
    if as_json {
        let mut json = serde_json::Serializer::pretty(&mut w);
        let mut docs = json.serialize_seq(Some(ids.len()))?;
        for id in &ids {
            let i = repo.info(id)?;
            docs.serialize_element(&json!({
                "id": i.doc.to_string(),
                "name": i.name,
                "role": i.my_role.map(|r| r.to_string()),
                "readable": i.readable,
            }))?;
        }
        docs.end()?;
        writeln!(w)?;
    } else {
        for id in &ids {
            let i = repo.info(id)?;
            let role = i.my_role.map_or_else(|| "pending".to_owned(), |r| r.to_string());
            let state = if i.readable { "readable" } else { "not yet synced" };
            let name = i.name.as_deref().unwrap_or("-");
            writeln!(w, "{}\t{name}\t{role}\t{state}", i.doc)?;
        }
    }
    w.flush()?;
    Ok(())
}

fn info(doc: &DocHandle, as_json: bool) -> anyhow::Result<()> {
    let i = doc.info()?;
    if as_json {
        let value = json!({
            "id": i.doc.to_string(),
            "name": i.name,
            "my_role": i.my_role.map(|r| r.to_string()),
            "members": i.members.iter().map(|(m, r)| json!({"member": m.to_string(), "role": r.to_string()})).collect::<Vec<_>>(),
            "version_vector": i.vv.iter().map(|(m, s)| (m.to_string(), json!(s))).collect::<serde_json::Map<_, _>>(),
            "log_ops": i.log_ops,
            "chunks": i.chunks,
            "stored_bytes": i.stored_bytes,
            "readable": i.readable,
        });
        out!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    out!("document  {}", i.doc);
    if let Some(n) = &i.name {
        out!("name      {n}");
    }
    out!(
        "my role   {}",
        i.my_role
            .map_or_else(|| "none (pending or removed)".to_owned(), |r| r.to_string())
    );
    out!("members");
    for (m, r) in &i.members {
        out!("  {m}  {r}");
    }
    out!("version vector ({} change batches)", i.vv.total());
    for (m, s) in i.vv.iter() {
        out!("  {m}  {s}");
    }
    out!(
        "stored    {} chunks, {} access ops, {} bytes sealed",
        i.chunks,
        i.log_ops,
        i.stored_bytes
    );
    Ok(())
}

/// The directory of `path` and a temporary file in it to write before
/// renaming over `path`.
fn temp_beside(path: &Path) -> anyhow::Result<(&Path, PathBuf)> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} needs a file name", path.display()))?;
    Ok((dir, dir.join(format!(".{}.tmp", name.to_string_lossy()))))
}

/// Write a file so that it is either absent or complete, even on a crash.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let (dir, tmp) = temp_beside(path)?;
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("cannot write {}", path.display()))
    })
}
