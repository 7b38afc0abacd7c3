//! The `synkro` binary, run for real against homes in temporary directories.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    /// `synkro --home HOME args...`, ready to run or spawn.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_synkro"));
        cmd.arg("--home").arg(self.path()).args(args).env_remove("SYNKRO_HOME");
        cmd
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run synkro")
    }

    /// Run, require success, return the last stdout line.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "synkro {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        last_line(&out)
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "synkro {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }
}

fn last_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The command failed with `code` and a one-line `error:` message containing `needle`.
fn fails(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "expected exit {code}; stderr: {stderr}");
    assert!(stderr.contains("error:"), "no error line: {stderr}");
    assert!(
        stderr.to_lowercase().contains(&needle.to_lowercase()),
        "{needle:?} not in: {stderr}"
    );
}

#[test]
fn init_is_idempotent_and_prints_the_member_id() {
    let home = Home::new();
    let first = home.ok(&["init"]);
    // Base58 of 32 bytes is 43 or 44 characters, depending on the leading value.
    assert!((43..=44).contains(&first.len()), "base58 of 32 bytes: {first}");
    assert!(first.parse::<synkro::MemberId>().is_ok(), "{first} is a member id");
    assert_eq!(home.ok(&["init"]), first);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.path().join("identity.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "identity key must be private");
    }
}

#[test]
fn set_get_delete_with_paths() {
    let home = Home::new();
    let doc = home.ok(&["new", "--name", "notes"]);
    home.ok(&["set", &doc, "a/b/c", r#"{"x":[1,2]}"#]);
    assert_eq!(home.ok(&["get", &doc, "a/b/c/x/1"]), "2");
    home.ok(&["set", &doc, "list", r#"["one"]"#]);
    home.ok(&["set", &doc, "list/1", r#""two""#]); // append
    home.ok(&["set", &doc, "list/0", r#""uno""#]); // overwrite
    home.ok(&["delete", &doc, "a/b"]);
    assert_eq!(home.json(&["get", &doc]), json!({"a": {}, "list": ["uno", "two"]}));

    // A unique prefix of the id works too.
    assert_eq!(home.json(&["get", &doc[..8], "list"]), json!(["uno", "two"]));

    let list = home.json(&["list", "--json"]);
    assert_eq!(
        list,
        json!([{"id": doc, "name": "notes", "role": "admin", "readable": true}])
    );
}

/// `synkro get … | head`: the reader leaves early; the CLI stops quietly
/// instead of panicking on the closed pipe.
#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    let home = Home::new();
    let doc = home.ok(&["new"]);
    // More than a pipe's buffer (64 KiB), so the write meets the closed
    // end (one argument may be at most 128 KiB).
    home.ok(&["set", &doc, "text", &format!("\"{}\"", "y".repeat(100 * 1024))]);
    let mut child = home
        .command(&["get", &doc])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run synkro");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_fails_cleanly_and_changes_nothing() {
    let home = Home::new();
    let doc = home.ok(&["new"]);
    home.ok(&["set", &doc, "title", r#""keep me""#]);
    let before = home.json(&["get", &doc]);

    fails(&home.run(&["set", &doc, "title", "not json"]), 2, "not valid JSON");
    fails(&home.run(&["set", &doc, "title/x//y", "1"]), 1, "empty segment");
    fails(&home.run(&["set", &doc, "title/x", "1"]), 1, "title");
    fails(&home.run(&["delete", &doc, "missing"]), 1, "nothing to delete");
    fails(&home.run(&["get", &doc, "missing"]), 1, "nothing at");
    fails(
        &home.run(&["get", "11111111111111111111111111111111"]),
        1,
        "unknown document",
    );
    fails(&home.run(&["get", "zzz"]), 1, "no document");
    fails(&home.run(&["share", &doc, "--role", "boss"]), 2, "unknown role");
    fails(&home.run(&["share", &doc, "--role", "replicate"]), 2, "relays");
    fails(&home.run(&["join", "synkro1garbage"]), 2, "invalid invitation");
    fails(&home.run(&["join", "hello"]), 2, "invalid invitation");
    fails(&home.run(&["revoke", &doc, "nobody"]), 2, "member id");
    let stranger = "2CkqiwU4SpXNZbfRLZjCsgM6bdLjixzqLUCiH6xPkQBm";
    fails(&home.run(&["revoke", &doc, stranger]), 1, "not a member");
    fails(
        &home.run(&["export", &doc, "out.bk", "--passphrase-env", "SYNKRO_NO_SUCH_VAR"]),
        2,
        "not set",
    );
    fails(
        &home.run(&["import", "/nonexistent/file", "--passphrase-env", "PATH"]),
        1,
        "cannot read",
    );
    fails(&home.run(&["frobnicate"]), 2, "unrecognized subcommand");

    assert_eq!(
        home.json(&["get", &doc]),
        before,
        "a failed command changed the document"
    );
}

#[test]
fn share_join_export_import_revoke() {
    let (a, b, c) = (Home::new(), Home::new(), Home::new());
    let doc = a.ok(&["new"]);
    a.ok(&["set", &doc, "items", r#"["milk","tea"]"#]);
    let owner = a.ok(&["init"]);
    let info = a.json(&["info", &doc, "--json"]);
    assert_eq!(info["members"], json!([{"member": owner, "role": "admin"}]));

    // Join prints the id; the content is not here until a sync.
    let token = a.ok(&["share", &doc, "--role", "write"]);
    assert!(token.starts_with("synkro1"));
    assert_eq!(b.ok(&["join", &token]), doc);
    fails(&b.run(&["get", &doc]), 1, "not arrived yet");

    // Backups move the document to any device.
    let backup = a.path().join("doc.backup");
    let backup = backup.to_str().unwrap();
    let pass = [("PASS", "correct horse battery staple")];
    let out = a.run_env(&["export", &doc, backup, "--passphrase-env", "PASS"], &pass);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    fails(
        &a.run_env(&["export", &doc, backup, "--passphrase-env", "PASS"], &pass),
        1,
        "--force",
    );

    let wrong = [("PASS", "wrong")];
    fails(
        &c.run_env(&["import", backup, "--passphrase-env", "PASS"], &wrong),
        1,
        "wrong passphrase",
    );
    let out = c.run_env(&["import", backup, "--passphrase-env", "PASS"], &pass);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(last_line(&out), doc);
    assert_eq!(c.json(&["get", &doc]), a.json(&["get", &doc]));
    // The importer is a member (the exporter is an admin) and can write.
    c.ok(&["set", &doc, "items/2", r#""bread""#]);
    assert_eq!(c.json(&["get", &doc, "items"]), json!(["milk", "tea", "bread"]));

    // A damaged backup fails cleanly.
    let mut bytes = std::fs::read(backup).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let damaged = a.path().join("damaged.backup");
    std::fs::write(&damaged, &bytes).unwrap();
    fails(
        &Home::new().run_env(
            &["import", damaged.to_str().unwrap(), "--passphrase-env", "PASS"],
            &pass,
        ),
        1,
        "damaged",
    );

    // Revoke the invitation-created member seen in the log (the export's invite).
    let info = a.json(&["info", &doc, "--json"]);
    let members = info["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "nobody has synced a claim back to A yet: {members:?}");
    fails(&a.run(&["revoke", &doc, &b.ok(&["init"])]), 1, "not a member");
}

#[test]
fn a_home_is_used_by_one_process_at_a_time() {
    let home = Home::new();
    let doc = home.ok(&["new"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let repo = rt.block_on(synkro::Repo::open(home.path())).unwrap();
    fails(&home.run(&["get", &doc]), 1, "in use");
    // The repo's background tasks share its storage (and lock) until they
    // end; they end with the runtime that runs them.
    drop(repo);
    drop(rt);
    home.ok(&["get", &doc]);
}

/// A `synkro serve` process that is killed when dropped.
struct Served {
    child: std::process::Child,
    addr: String,
}

impl Served {
    fn start(home: &Home) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_synkro"))
            .arg("--home")
            .arg(home.path())
            .args(["serve", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"])
            .env_remove("SYNKRO_HOME")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn synkro serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let line = lines.next().expect("serve prints its address").expect("utf-8");
        let addr = line.strip_prefix("listening ").expect("a listening line").to_owned();
        Self { child, addr }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_and_sync_once_between_two_devices() {
    let (alice, bob) = (Home::new(), Home::new());
    let doc = alice.ok(&["new"]);
    alice.ok(&["set", &doc, "title", r#""from alice""#]);
    let token = alice.ok(&["share", &doc, "--role", "write"]);
    bob.ok(&["join", &token]);

    let served = Served::start(&alice);
    let report = bob.ok(&["sync", "--peer", &served.addr, "--once"]);
    assert!(report.starts_with("synced 1 document"), "{report}");
    assert_eq!(bob.ok(&["get", &doc, "title"]), r#""from alice""#);

    bob.ok(&["set", &doc, "reply", r#""from bob""#]);
    bob.ok(&["sync", "--peer", &served.addr, "--once"]);
    drop(served); // releases alice's home
    assert_eq!(alice.ok(&["get", &doc, "reply"]), r#""from bob""#);
}

#[test]
fn sync_reports_bad_and_unreachable_addresses() {
    let home = Home::new();
    home.ok(&["init"]);
    fails(&home.run(&["sync", "--once"]), 2, "--relay or a --peer");
    fails(
        &home.run(&["sync", "--relay", "not-an-address", "--once"]),
        2,
        "not a multiaddr",
    );
    fails(
        &home.run(&["sync", "--relay", "/ip4/127.0.0.1/tcp/4001", "--once"]),
        2,
        "/p2p/<peer id>",
    );
    // A port nobody listens on: refused at once, not a hang.
    let nobody = "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    fails(
        &home.run(&["sync", "--relay", nobody, "--once", "--timeout", "10"]),
        1,
        "cannot",
    );
}

/// A file Automerge saved comes in with its history; the document goes out
/// again as a file Automerge opens; bytes that are not Automerge make nothing.
#[test]
fn import_and_export_automerge_files() {
    use synkro::automerge::{AutoCommit, ObjType, ROOT, ReadDoc, transaction::Transactable};
    let mut a = AutoCommit::new();
    let items = a.put_object(ROOT, "items", ObjType::List).unwrap();
    a.insert(&items, 0, "one").unwrap();
    a.put(ROOT, "title", "Notes").unwrap();
    a.commit();
    let mut b = a.fork();
    a.insert(&items, 1, "two").unwrap();
    b.put(ROOT, "title", "Shared notes").unwrap();
    a.merge(&mut b).unwrap();
    let original_heads = a.get_heads();

    let home = Home::new();
    let file = home.path().join("notes.automerge");
    std::fs::write(&file, a.save()).unwrap();
    let doc = home.ok(&["import-automerge", file.to_str().unwrap(), "--name", "imported"]);
    assert_eq!(
        home.json(&["get", &doc]),
        json!({"items": ["one", "two"], "title": "Shared notes"})
    );
    home.ok(&["set", &doc, "done", "true"]);

    let out = home.path().join("out.automerge");
    home.ok(&["export-automerge", &doc, out.to_str().unwrap()]);
    let back = AutoCommit::load(&std::fs::read(&out).unwrap()).expect("Automerge opens the export");
    assert!(
        original_heads.iter().all(|h| back.get_change_by_hash(h).is_some()),
        "history kept"
    );
    assert_eq!(
        back.get(ROOT, "done").unwrap().map(|(v, _)| v.as_bool()),
        Some(Some(true))
    );
    fails(
        &home.run(&["export-automerge", &doc, out.to_str().unwrap()]),
        1,
        "--force",
    );

    let junk = home.path().join("junk.automerge");
    std::fs::write(&junk, b"not automerge at all").unwrap();
    fails(&home.run(&["import-automerge", junk.to_str().unwrap()]), 1, "Automerge");
    assert_eq!(
        home.json(&["list", "--json"]).as_array().map(Vec::len),
        Some(1),
        "nothing made"
    );
}

#[test]
fn attach_a_file_and_write_it_back() {
    let home = Home::new();
    let doc = home.ok(&["new"]);
    // Not a multiple of anything: the last chunk is short.
    let data: Vec<u8> = (0..700_001u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = home.path().join("photo.jpg");
    std::fs::write(&file, &data).unwrap();
    let out = home.run(&[
        "attach",
        &doc,
        "tasks/0/photo",
        file.to_str().unwrap(),
        "--mime",
        "image/jpeg",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let blob: Value = serde_json::from_slice(&out.stdout).expect("the reference, as JSON");
    assert_eq!(blob["size"], json!(700_001));
    assert_eq!(blob["mime"], json!("image/jpeg"));
    assert_eq!(blob["name"], json!("photo.jpg"));
    assert_eq!(blob["doc"], json!(doc));
    // The reference is in the document.
    assert_eq!(home.json(&["get", &doc, "tasks/0/photo"]), blob);

    let copy = home.path().join("copy.jpg");
    home.ok(&["blob", &doc, "tasks/0/photo", copy.to_str().unwrap()]);
    assert!(std::fs::read(&copy).unwrap() == data, "the same bytes back");
    // An existing file is kept unless --force.
    fails(
        &home.run(&["blob", &doc, "tasks/0/photo", copy.to_str().unwrap()]),
        1,
        "--force",
    );
    home.ok(&["blob", &doc, "tasks/0/photo", copy.to_str().unwrap(), "--force"]);
    // A path that holds something else is a usage error, not a crash.
    home.ok(&["set", &doc, "title", "\"Trip\""]);
    fails(
        &home.run(&["blob", &doc, "title", copy.to_str().unwrap(), "--force"]),
        2,
        "not an attached file",
    );
    fails(&home.run(&["attach", &doc, "x", "/nonexistent/file"]), 1, "cannot read");
}
