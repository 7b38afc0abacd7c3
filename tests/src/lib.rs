//! Helpers for synkro's process-level tests: the workspace's binaries
//! (`synkro`, `synkro-relay`) run for real on loopback, with homes and data
//! directories in temporary directories, and scans for plaintext in files
//! and in a process's memory.
//!
//! Binaries are taken from the target directory this test runs from, so
//! run these tests through `cargo test --workspace` (or `scripts/test.sh`),
//! which builds them first. Every child process is killed when its handle
//! drops, so a failing test leaves nothing running.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

mod nats;
pub use nats::Nats;

/// Path of a binary of this workspace, built next to the running test.
pub fn bin(name: &str) -> PathBuf {
    // target/<profile>/deps/<test binary> or target/<profile>/<binary>
    // (the benchmarks) → target/<profile>/<name>
    let exe = std::env::current_exe().expect("test binary path");
    let mut dir = exe.parent().expect("target directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target directory");
    }
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built; run the tests with `cargo test --workspace` or scripts/test.sh",
        path.display()
    );
    path
}

/// One device: a `synkro` home in a temporary directory.
pub struct CliHome {
    dir: tempfile::TempDir,
}

impl Default for CliHome {
    fn default() -> Self {
        Self::new()
    }
}

impl CliHome {
    /// An empty home.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The home directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `synkro --home HOME args...`, ready to run or spawn.
    pub fn command(&self, args: &[&str]) -> Command {
        synkro_cli(self.path(), args)
    }

    /// Run to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run synkro")
    }

    /// Run, require success, return stdout's last line.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "synkro {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// Run, require success, parse stdout as JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "synkro {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    /// Start `synkro serve` with `args`; returns once it printed an address.
    pub fn serve(&self, args: &[&str]) -> anyhow::Result<Process> {
        let mut cmd = self.command(&["serve"]);
        cmd.args(args);
        Process::start(cmd, Duration::from_secs(20), |lines| {
            lines.iter().any(|l| l.starts_with("listening "))
        })
    }
}

/// `synkro --home HOME args...` for any home directory (one on a small
/// tmpfs, say), ready to run or spawn.
pub fn synkro_cli(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("synkro"));
    cmd.arg("--home").arg(home).args(args).env_remove("SYNKRO_HOME");
    cmd
}

/// A child process whose stdout lines are collected as they come; killed
/// on drop.
pub struct Process {
    child: Child,
    lines: Vec<String>,
    rx: mpsc::Receiver<String>,
}

impl Process {
    /// Spawn `cmd` (stdout piped, stderr inherited so failures show in the
    /// test log) and wait until `ready` holds for the lines printed so far.
    pub fn start(mut cmd: Command, timeout: Duration, ready: impl Fn(&[String]) -> bool) -> anyhow::Result<Self> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let rx = read_lines(stdout);
        let mut p = Self {
            child,
            lines: Vec::new(),
            rx,
        };
        p.wait_for(timeout, ready)?;
        Ok(p)
    }

    /// Wait until `ready` holds for every line printed so far.
    pub fn wait_for(&mut self, timeout: Duration, ready: impl Fn(&[String]) -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !ready(&self.lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.lines.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => bail!("not ready after {timeout:?}; printed {:?}", self.lines),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait()?;
                    bail!("exited with {status} before it was ready; printed {:?}", self.lines)
                }
            }
        }
        Ok(())
    }

    /// Lines printed so far (including any that arrived since last asked).
    pub fn lines(&mut self) -> &[String] {
        while let Ok(line) = self.rx.try_recv() {
            self.lines.push(line);
        }
        &self.lines
    }

    /// The rest of the first line printed so far that starts with `prefix`.
    pub fn line_after(&mut self, prefix: &str) -> Option<String> {
        self.lines()
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::to_owned)
    }

    /// Addresses from `listening <addr>` lines.
    pub fn listening(&mut self) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|l| l.strip_prefix("listening "))
            .map(str::to_owned)
            .collect()
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM and wait up to `timeout` for the exit code.
    #[cfg(unix)]
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        let status = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s.code());
            }
            if Instant::now() >= deadline {
                bail!("still running {timeout:?} after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill it now (SIGKILL) and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A `synkro-relay` process on loopback with every listener on a free port.
pub struct Relay {
    /// The process.
    pub process: Process,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// `ip:port` of its HTTP endpoint.
    pub http: String,
}

/// Prefix of every plaintext canary the end-to-end tests write into
/// documents; no relay may ever store it.
pub const CANARY_PREFIX: &str = "PLAINTEXT-CANARY-";

/// Every relay a test started is checked when it goes away: nothing in
/// its data directory may contain a plaintext canary.
impl Drop for Relay {
    fn drop(&mut self) {
        self.process.kill();
        if std::thread::panicking() {
            return;
        }
        let mut stack = vec![self.data_dir.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    assert!(
                        !bytes
                            .windows(CANARY_PREFIX.len())
                            .any(|w| w == CANARY_PREFIX.as_bytes()),
                        "the relay stored plaintext: a canary is in {}",
                        path.display()
                    );
                }
            }
        }
    }
}

impl Relay {
    /// Listen arguments for every transport on 127.0.0.1, port 0.
    pub const LOOPBACK: [&'static str; 8] = [
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--listen",
        "/ip4/127.0.0.1/udp/0/quic-v1",
        "--listen",
        "/ip4/127.0.0.1/tcp/0/ws",
        "--listen",
        "/ip4/127.0.0.1/udp/0/webrtc-direct",
    ];

    /// Start a relay storing in `data_dir`, all transports on loopback, with
    /// `extra` arguments; returns once every listener and HTTP are up.
    pub fn start(data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let mut cmd = Command::new(bin("synkro-relay"));
        cmd.arg("--data-dir")
            .arg(data_dir)
            .arg("--http")
            .arg("127.0.0.1:0")
            .arg("--stun")
            .arg("127.0.0.1:0")
            .args(Self::LOOPBACK)
            .args(extra)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()));
        let listeners = Self::LOOPBACK.len() / 2;
        let mut process = Process::start(cmd, Duration::from_secs(90), |lines| {
            lines.iter().filter(|l| l.starts_with("listening ")).count() >= listeners
                && lines.iter().any(|l| l.starts_with("http "))
        })?;
        let http = process.line_after("http ").context("http line")?;
        Ok(Self {
            process,
            data_dir: data_dir.to_owned(),
            http,
        })
    }

    /// The first listening address whose text contains `transport`
    /// (`"/tcp/"` without `/ws`, `"/quic-v1"`, `"/ws/"`, `"/webrtc-direct"`).
    pub fn addr(&mut self, transport: &str) -> String {
        let all = self.process.listening();
        all.iter()
            .find(|a| a.contains(transport) && (transport != "/tcp/" || !a.contains("/ws")))
            .cloned()
            .unwrap_or_else(|| panic!("no {transport} address among {all:?}"))
    }

    /// Every listening address, as printed.
    pub fn addrs(&mut self) -> Vec<String> {
        self.process.listening()
    }

    /// The relay process's resident memory, from `/proc` (Linux).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .context("VmRSS in /proc/<pid>/status")
    }

    /// The relay's PeerId, from its addresses.
    pub fn peer_id(&mut self) -> String {
        let a = self.addr("/tcp/");
        a.rsplit("/p2p/").next().unwrap_or_default().to_owned()
    }

    /// GET `path` from the HTTP endpoint: (status, body).
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get(&self.http, path)
    }

    /// The value of a metric (first sample whose line starts with `name`).
    pub fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| l.split([' ', '{']).next() == Some(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no metric {name}"))
    }
}

/// Raise this process's open-file limit to its hard limit: the flood tests
/// and benchmarks hold a thousand connections, above the usual soft limit
/// of 1,024.
pub fn raise_descriptor_limit() {
    #[cfg(unix)]
    let _ = rlimit::increase_nofile_limit(u64::MAX);
}

/// A plain HTTP/1.1 GET on loopback: (status, body).
pub fn http_get(host: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let response = ureq::get(&format!("http://{host}{path}"))
        .config()
        .http_status_as_error(false)
        .build()
        .call()?;
    let status = response.status().as_u16();
    let body = response.into_body().read_to_string()?;
    Ok((status, body))
}

/// Does `needle` occur in `hay`?
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Files under `dir` (recursively) that contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if contains(&std::fs::read(&path)?, needle) {
                found.push(path);
            }
        }
    }
    Ok(found)
}

/// Bytes of every file under `dir`, summed.
pub fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            if entry.path().is_dir() {
                stack.push(entry.path());
            } else {
                total += entry.metadata()?.len();
            }
        }
    }
    Ok(total)
}

/// Does `needle` occur anywhere in the readable memory of process `pid`
/// (Linux, same user)? Used to show a relay never holds plaintext, not
/// even transiently in RAM.
#[cfg(target_os = "linux")]
pub fn process_memory_contains(pid: u32, needle: &[u8]) -> anyhow::Result<bool> {
    use std::io::{Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem"))?;
    let mut scanned = 0u64;
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !perms.starts_with('r') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) else {
            continue;
        };
        let mut buf = vec![0u8; (end - start) as usize];
        // Some mappings (guard pages, vsyscall) cannot be read: skip them.
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        scanned += buf.len() as u64;
        if contains(&buf, needle) {
            return Ok(true);
        }
    }
    anyhow::ensure!(scanned > 0, "could not read any memory of process {pid}");
    Ok(false)
}
