//! synkro on the benchmark workloads: in-process repos syncing through a
//! real `synkro-relay` process over WebSocket on loopback, the topology of
//! automerge-repo's clients and sync server.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use synkro::automerge::transaction::Transactable;
use synkro::automerge::{ObjType, ROOT, ReadDoc};
use synkro::net::{Multiaddr, NetConfig, Network};
use synkro::{DocHandle, DocId, Event, MemberId, Repo, Role};

use crate::Latencies;

const WAIT: Duration = Duration::from_secs(60);

/// A repo with its network, connected to the relay.
pub struct Peer {
    pub repo: Repo,
    pub net: Network,
    pub relay: MemberId,
}

impl Peer {
    pub async fn connect(repo: Repo, relay: &Multiaddr) -> anyhow::Result<Self> {
        let net = repo
            .connect(NetConfig {
                relays: vec![relay.clone()],
                ..NetConfig::default()
            })
            .await?;
        let relay = tokio::time::timeout(WAIT, net.dial(relay.clone())).await??;
        Ok(Self { repo, net, relay })
    }

    pub async fn in_memory(relay: &Multiaddr) -> anyhow::Result<Self> {
        Self::connect(Repo::in_memory().await?, relay).await
    }

    pub async fn close(self) {
        self.net.shutdown().await;
    }
}

/// Wait until `pred` holds for `doc`, re-checking on each of its changes.
async fn until(doc: &DocHandle, pred: impl FnMut(&DocHandle) -> bool) -> anyhow::Result<()> {
    tokio::time::timeout(WAIT, holds(doc, pred))
        .await
        .context("a document did not arrive in time")
}

/// Returns once `pred` holds for `doc`, re-checking on each of its changes.
async fn holds(doc: &DocHandle, mut pred: impl FnMut(&DocHandle) -> bool) {
    let mut changes = doc.subscribe();
    while !pred(doc) {
        tokio::select! {
            _ = changes.recv() => {}
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

fn seq_of(doc: &DocHandle, key: &str) -> i64 {
    doc.get(key).ok().flatten().and_then(|v| v.as_i64()).unwrap_or(0)
}

/// Result of one flow run.
pub struct Flow {
    pub latencies: Latencies,
    pub expected: usize,
    pub achieved_rate: f64,
}

/// Writers change `docs` documents (split among them) at `rate` changes/s
/// for `seconds`; every reader follows every document (see bench.mjs).
pub async fn flow(
    relay: &Multiaddr,
    writers: usize,
    readers: usize,
    docs: usize,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<Flow> {
    flow_between(relay, relay, writers, readers, docs, rate, seconds).await
}

/// [`flow`] with the writers connected to `to_writers` and the readers to
/// `to_readers` (two relays of a cluster).
pub async fn flow_between(
    to_writers: &Multiaddr,
    to_readers: &Multiaddr,
    writers: usize,
    readers: usize,
    docs: usize,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<Flow> {
    let mut ws = Vec::new();
    for _ in 0..writers {
        ws.push(Peer::in_memory(to_writers).await?);
    }
    let mut rs = Vec::new();
    for _ in 0..readers {
        rs.push(Peer::in_memory(to_readers).await?);
    }
    let mut handles = Vec::new();
    for d in 0..docs {
        let w = &ws[d % writers];
        let doc = w.repo.create().await?;
        doc.set("seq", &json!(0))?;
        handles.push(doc);
    }
    let index: Arc<HashMap<DocId, usize>> = Arc::new(handles.iter().enumerate().map(|(i, h)| (h.id(), i)).collect());
    // sent[d][n]: when change n of document d was made (n = 0: the initial value).
    let sent: Arc<Mutex<Vec<Vec<Instant>>>> = Arc::new(Mutex::new(vec![vec![Instant::now()]; docs]));
    let latencies = Arc::new(Mutex::new(Latencies::default()));
    let mut followers = Vec::new();
    for r in &rs {
        let mut theirs = Vec::new();
        for h in &handles {
            let token = h.share(Role::Read).await?;
            theirs.push(r.repo.join(&token).await?);
        }
        for doc in &theirs {
            until(doc, |d| d.get("seq").ok().flatten().is_some()).await?;
        }
        // One task per reader follows every document from the repo's events.
        let (index, sent, latencies) = (index.clone(), sent.clone(), latencies.clone());
        let mut events = r.repo.events();
        followers.push(tokio::spawn(async move {
            let mut seen = vec![0i64; theirs.len()];
            let mut check = |d: usize, now: Instant| {
                let seq = seq_of(&theirs[d], "seq");
                let sent = sent.lock().expect("sent");
                let mut l = latencies.lock().expect("latencies");
                for n in seen[d] + 1..=seq {
                    if let Some(t) = sent[d].get(n as usize) {
                        l.push(now - *t);
                    }
                }
                seen[d] = seen[d].max(seq);
            };
            loop {
                match events.recv().await {
                    Ok(Event::DocChanged { doc, .. }) => {
                        if let Some(&d) = index.get(&doc) {
                            check(d, Instant::now());
                        }
                    }
                    Ok(_) => {}
                    // Fell behind the repo's events: look at every document.
                    Err(synkro::RecvError::Overflowed(_)) => {
                        let now = Instant::now();
                        (0..index.len()).for_each(|d| check(d, now));
                    }
                    Err(synkro::RecvError::Closed) => return,
                }
            }
        }));
    }
    let (total, achieved_rate) = write_at(&handles, rate, seconds, |d| {
        sent.lock().expect("sent")[d].push(Instant::now());
    })
    .await?;
    let expected = total * readers;
    let deadline = Instant::now() + Duration::from_secs(15);
    while latencies.lock().expect("latencies").len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for f in followers {
        f.abort();
    }
    for p in ws.into_iter().chain(rs) {
        p.close().await;
    }
    let latencies = std::mem::take(&mut *latencies.lock().expect("latencies"));
    Ok(Flow {
        latencies,
        expected,
        achieved_rate,
    })
}

/// Make `rate` changes/s for `seconds`, round-robin over `handles`: change
/// n of a document sets its `seq` to n; `sent(d)` is called just before
/// each change of document `d`. Returns how many were made and at what
/// rate.
pub async fn write_at(
    handles: &[DocHandle],
    rate: f64,
    seconds: f64,
    mut sent: impl FnMut(usize),
) -> anyhow::Result<(usize, f64)> {
    let total = (rate * seconds).round() as usize;
    let mut seq = vec![0usize; handles.len()];
    let start = Instant::now();
    let mut made = 0;
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    while made < total {
        ticks.tick().await;
        let due = total.min((start.elapsed().as_secs_f64() * rate) as usize);
        while made < due {
            let d = made % handles.len();
            seq[d] += 1;
            sent(d);
            handles[d].set("seq", &json!(seq[d]))?;
            made += 1;
        }
    }
    Ok((total, total as f64 / start.elapsed().as_secs_f64()))
}

/// Large document: the writer types `edits` (one change per keystroke),
/// then a fresh device fetches the document from the relay. Returns the
/// fetch time.
pub async fn large(relay: &Multiaddr, edits: &[crate::trace::Edit]) -> anyhow::Result<Duration> {
    let a = Peer::in_memory(relay).await?;
    let doc = a.repo.create().await?;
    let text = doc.change(crate::trace::start)?;
    for e in edits {
        doc.change(|d| crate::trace::apply(d, &text, e))?;
    }
    doc.wait_durable_on(a.relay, WAIT).await?;
    let heads = doc.heads()?;
    let token = doc.share(Role::Read).await?;
    let start = Instant::now();
    let c = Peer::in_memory(relay).await?;
    let theirs = c.repo.join(&token).await?;
    until(&theirs, |d| d.heads().is_ok_and(|h| h == heads))
        .await
        .with_context(|| format!("the fresh peer has heads {:?} of {heads:?}", theirs.heads()))?;
    let took = start.elapsed();
    a.close().await;
    c.close().await;
    Ok(took)
}

/// How a trace is sealed: one flush after the whole trace (a burst typed
/// in one loop), a flush every `n` edits, or after every edit (typing).
#[derive(Clone, Copy, Debug)]
pub enum Rhythm {
    OneLoop,
    Every(usize),
}

/// The trace typed into an in-memory repo in `rhythm`: the sealed bytes it
/// stores (ops and chunks) and the size of the document's own Automerge
/// save.
pub async fn stored_bytes(edits: &[crate::trace::Edit], rhythm: Rhythm) -> anyhow::Result<(usize, usize)> {
    let repo = Repo::in_memory().await?;
    let doc = repo.create().await?;
    let text = doc.change(crate::trace::start)?;
    for (i, e) in edits.iter().enumerate() {
        doc.change(|d| crate::trace::apply(d, &text, e))?;
        if let Rhythm::Every(n) = rhythm
            && (i + 1) % n == 0
        {
            doc.flush().await?;
        }
    }
    doc.flush().await?;
    let save = doc.read(|d| d.clone().save().len())?;
    Ok((doc.info()?.stored_bytes, save))
}

/// A writer and a reader following one document through the relay; the
/// writer holds `edits` already (a long text or a short one).
pub struct Typing {
    a: Peer,
    b: Peer,
    doc: DocHandle,
    text: synkro::automerge::ObjId,
    theirs: DocHandle,
}

impl Typing {
    pub async fn start(relay: &Multiaddr, edits: &[crate::trace::Edit]) -> anyhow::Result<Self> {
        let a = Peer::in_memory(relay).await?;
        let doc = a.repo.create().await?;
        let text = doc.change(crate::trace::start)?;
        for e in edits {
            doc.change(|d| crate::trace::apply(d, &text, e))?;
        }
        let token = doc.share(Role::Read).await?;
        doc.wait_durable_on(a.relay, WAIT).await?;
        let b = Peer::in_memory(relay).await?;
        let theirs = b.repo.join(&token).await?;
        let heads = doc.heads()?;
        until(&theirs, |d| d.heads().is_ok_and(|h| h == heads)).await?;
        Ok(Self {
            a,
            b,
            doc,
            text,
            theirs,
        })
    }

    /// The writer types `n` characters at the end of the text at `rate`
    /// per second; each from the writer's change to the reader's.
    pub async fn keystrokes(&self, n: usize, rate: f64) -> anyhow::Result<Latencies> {
        let base = self.text_len(&self.theirs)?;
        let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let mut changes = self.theirs.subscribe();
        let (theirs, sent_by) = (self.theirs.clone(), sent.clone());
        let text = self.text.clone();
        let reader = tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut seen = 0;
            while seen < n {
                if tokio::time::timeout(WAIT, changes.recv())
                    .await
                    .ok()
                    .flatten()
                    .is_none()
                {
                    break;
                }
                let now = Instant::now();
                let len = theirs.read(|d| d.length(&text)).unwrap_or(base);
                while seen < len.saturating_sub(base).min(n) {
                    if let Some(t) = sent_by.lock().unwrap_or_else(|e| e.into_inner()).get(seen) {
                        latencies.push(now - *t);
                    }
                    seen += 1;
                }
            }
            latencies
        });
        let period = Duration::from_secs_f64(1.0 / rate);
        let start = Instant::now();
        for k in 0..n {
            tokio::time::sleep_until((start + period * k as u32).into()).await;
            let at = self.text_len(&self.doc)?;
            sent.lock().unwrap_or_else(|e| e.into_inner()).push(Instant::now());
            self.doc.change(|d| d.splice_text(&self.text, at, 0, "x"))?;
        }
        Ok(reader.await?)
    }

    fn text_len(&self, doc: &DocHandle) -> anyhow::Result<usize> {
        Ok(doc.read(|d| d.length(&self.text))?)
    }

    pub async fn close(self) {
        self.a.close().await;
        self.b.close().await;
    }
}

/// Many documents: first sync, cold open, reconnect (see bench.mjs).
pub struct Many {
    pub first_sync: Duration,
    pub open_one: Duration,
    pub cold_open: Duration,
    pub reconnect: Duration,
    pub reconnect_messages: u64,
    pub reconnect_bytes: u64,
}

pub async fn many(relay: &Multiaddr, docs: usize, home_a: &Path, home_b: &Path) -> anyhow::Result<Many> {
    let a = Peer::connect(Repo::open(home_a).await?, relay).await?;
    let mut tokens = Vec::new();
    for i in 0..docs {
        let doc = a.repo.create().await?;
        doc.set("title", &json!(format!("doc {i}")))?;
        doc.set("n", &json!(i))?;
        tokens.push(doc.share(Role::Read).await?);
    }
    a.repo.flush_all().await?;
    a.repo.wait_synced(a.relay, WAIT).await?;

    // First sync: a fresh device gets every document through the relay,
    // joining them all at once (as an app joining a list would, and as
    // automerge-repo's finds run together).
    let start = Instant::now();
    let b = Peer::connect(Repo::open(home_b).await?, relay).await?;
    let theirs = futures::future::try_join_all(tokens.iter().map(|t| b.repo.join(t))).await?;
    // Documents arrive in any order: the whole set gets a deadline that
    // grows with its size (60 s per 10,000), not each document.
    let deadline = WAIT * u32::try_from(docs.div_ceil(10_000)).unwrap_or(u32::MAX);
    tokio::time::timeout(deadline, async {
        for doc in &theirs {
            holds(doc, |d| d.get("title").ok().flatten().is_some()).await;
        }
    })
    .await
    .with_context(|| format!("{docs} documents did not all arrive within {deadline:?}"))?;
    let first_sync = start.elapsed();
    b.repo.flush_all().await?;
    drop(theirs);
    a.close().await;
    let Peer { repo, net, .. } = b;
    net.shutdown().await;
    repo.close().await?;
    drop(repo);

    // Open and read one document: what a command-line call or an app
    // showing one document pays.
    let start = Instant::now();
    let one = Repo::open(home_b).await?;
    let first = one.list().first().copied().context("no document reopened")?;
    if one.find(&first).await?.get("title")?.is_none() {
        bail!("a document came back empty");
    }
    let open_one = start.elapsed();
    one.close().await?;
    drop(one);

    // Cold open: every document back from disk, no network.
    let start = Instant::now();
    let cold = Repo::open(home_b).await?;
    let ids = cold.list();
    for id in &ids {
        if cold.find(id).await?.get("title")?.is_none() {
            bail!("a document came back empty");
        }
    }
    let cold_open = start.elapsed();
    if ids.len() != docs {
        bail!("{} documents reopened of {docs}", ids.len());
    }

    // Reconnect with nothing changed: traffic until quiet for a second.
    let start = Instant::now();
    let r = Peer::connect(cold, relay).await?;
    let mut last = (r.net.total_traffic(), Instant::now());
    while last.1.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = r.net.total_traffic();
        if now.messages_sent + now.messages_received != last.0.messages_sent + last.0.messages_received {
            last = (now, Instant::now());
        }
    }
    let t = last.0;
    let out = Many {
        first_sync,
        open_one,
        cold_open,
        reconnect: last.1 - start,
        reconnect_messages: t.messages_sent + t.messages_received,
        reconnect_bytes: t.bytes_sent + t.bytes_received,
    };
    r.close().await;
    Ok(out)
}

/// Concurrent typists into one text (see bench.mjs).
pub async fn typists(relay: &Multiaddr, n: usize, keystrokes: f64, seconds: f64) -> anyhow::Result<(Latencies, usize)> {
    let mut ps = Vec::new();
    for _ in 0..n {
        ps.push(Peer::in_memory(relay).await?);
    }
    let first = ps[0].repo.create().await?;
    first.change(|d| {
        d.put_object(ROOT, "text", ObjType::Text)?;
        let typed = d.put_object(ROOT, "typed", ObjType::Map)?;
        for w in 0..n {
            d.put(&typed, format!("t{w}"), 0i64)?;
        }
        Ok(())
    })?;
    let mut hs = vec![first.clone()];
    for p in &ps[1..] {
        // An invitation is claimed once: one per typist.
        let token = first.share(Role::Write).await?;
        let h = p.repo.join(&token).await?;
        until(&h, |d| d.get("typed/t0").ok().flatten().is_some()).await?;
        hs.push(h);
    }
    let sent: Arc<Mutex<Vec<Vec<Instant>>>> = Arc::new(Mutex::new(vec![vec![Instant::now()]; n]));
    let latencies = Arc::new(Mutex::new(Latencies::default()));
    let mut followers = Vec::new();
    for (reader, h) in hs.iter().enumerate() {
        let (h, sent, latencies) = (h.clone(), sent.clone(), latencies.clone());
        let mut changes = h.subscribe();
        followers.push(tokio::spawn(async move {
            let mut seen = vec![0i64; n];
            while changes.recv().await.is_some() {
                let now = Instant::now();
                let sent = sent.lock().expect("sent");
                let mut l = latencies.lock().expect("latencies");
                for w in (0..n).filter(|w| *w != reader) {
                    let got = seq_of(&h, &format!("typed/t{w}"));
                    for k in seen[w] + 1..=got {
                        if let Some(t) = sent[w].get(k as usize) {
                            l.push(now - *t);
                        }
                    }
                    seen[w] = seen[w].max(got);
                }
            }
        }));
    }
    let per = (keystrokes * seconds).round() as usize;
    let gap = Duration::from_secs_f64(1.0 / keystrokes);
    let start = Instant::now();
    let mut typing = Vec::new();
    for (w, h) in hs.iter().enumerate() {
        let (h, sent) = (h.clone(), sent.clone());
        let offset = gap.mul_f64(w as f64 / n as f64);
        typing.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let ch = char::from(b'a' + (w % 26) as u8).to_string();
            let key = format!("t{w}");
            for k in 1..=per {
                sent.lock().expect("sent")[w].push(Instant::now());
                h.change(|d| {
                    let (_, text) = d.get(ROOT, "text")?.ok_or(synkro::automerge::AutomergeError::Fail)?;
                    let len = d.length(&text);
                    d.splice_text(&text, len, 0, &ch)?;
                    let (_, typed) = d.get(ROOT, "typed")?.ok_or(synkro::automerge::AutomergeError::Fail)?;
                    d.put(&typed, key.as_str(), k as i64)
                })?;
                tokio::time::sleep_until((start + offset + gap * k as u32).into()).await;
            }
            anyhow::Ok(())
        }));
    }
    for t in typing {
        t.await??;
    }
    let expected = per * n * (n - 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    while latencies.lock().expect("latencies").len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for f in followers {
        f.abort();
    }
    for p in ps {
        p.close().await;
    }
    let latencies = std::mem::take(&mut *latencies.lock().expect("latencies"));
    Ok((latencies, expected))
}

/// Memory of the relay process per idle connection.
pub async fn idle(relay: &synkro_tests::Relay, addr: &Multiaddr, connections: usize) -> anyhow::Result<f64> {
    synkro_tests::raise_descriptor_limit();
    let warm = Peer::in_memory(addr).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = relay.rss_bytes()?;
    let mut ps = Vec::new();
    for _ in 0..connections {
        ps.push(Peer::in_memory(addr).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = relay.rss_bytes()?;
    for p in std::iter::once(warm).chain(ps) {
        p.close().await;
    }
    Ok(after.saturating_sub(before) as f64 / connections as f64)
}
