// automerge-repo on synkro's benchmark workloads, driven by `synkro-bench`.
//
//   node bench.mjs server DIR          sync server on 127.0.0.1, port 0;
//                                      prints `listening PORT`, runs until killed
//   node bench.mjs SCENARIO 'JSON'     runs one scenario against a server,
//                                      prints one JSON line with the result
//
// The server is the one automerge-repo's sync server runs: a Repo with the
// WebSocket server adapter, Node file storage and `sharePolicy` false.
// Clients are Repos with the WebSocket client adapter and no storage unless
// the scenario needs one. AMR_SYNC_THROTTLE_MS lowers the 100 ms sync
// throttle (see throttle-hook.mjs).
import { register } from "node:module";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

if (process.env.AMR_SYNC_THROTTLE_MS) {
  register("./throttle-hook.mjs", import.meta.url);
}
const { Repo } = await import("@automerge/automerge-repo");
const { WebSocketClientAdapter, WebSocketServerAdapter } = await import("@automerge/automerge-repo-network-websocket");
const { NodeFSStorageAdapter } = await import("@automerge/automerge-repo-storage-nodefs");
const Automerge = await import("@automerge/automerge");
const { WebSocketServer } = await import("ws");

const sleep = ms => new Promise(r => setTimeout(r, ms));

/** A client adapter that counts the repo messages it sends and receives. */
class CountingAdapter extends WebSocketClientAdapter {
  sent = 0;
  received = 0;
  bytesSent = 0;
  bytesReceived = 0;
  lastTraffic = performance.now();
  send(message) {
    this.sent += 1;
    this.bytesSent += message.data?.byteLength ?? 0;
    this.lastTraffic = performance.now();
    super.send(message);
  }
  receiveMessage(bytes) {
    this.received += 1;
    this.bytesReceived += bytes.byteLength;
    this.lastTraffic = performance.now();
    super.receiveMessage(bytes);
  }
}

function client(url, storageDir) {
  const adapter = new CountingAdapter(url);
  const repo = new Repo({
    network: [adapter],
    storage: storageDir ? new NodeFSStorageAdapter(storageDir) : undefined,
    sharePolicy: async () => true,
  });
  return { repo, adapter };
}

async function connected(c) {
  await c.repo.networkSubsystem.whenReady();
  while (c.repo.peers.length === 0) await sleep(5);
}

/** Heads of a handle's document, comparable with Automerge.getHeads(). */
const headsOf = handle => JSON.stringify(Automerge.getHeads(handle.doc()).sort());

/** Poll `ok` every `every` ms for up to a minute. */
async function until(ok, what, every = 10) {
  const deadline = performance.now() + 60000;
  while (!(await ok())) {
    if (performance.now() > deadline) throw new Error(what);
    await sleep(every);
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(latencies) {
  const s = Float64Array.from(latencies).sort();
  return { count: s.length, p50_ms: percentile(s, 50), p99_ms: percentile(s, 99), max_ms: s.length ? s[s.length - 1] : null };
}

function rssOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024;
}

/**
 * Writers change `docs` documents (split among them) at `rate` changes/s
 * for `seconds`; every reader follows every document. Each change sets the
 * document's `seq`; a reader that sees `seq` = n has received changes 1..n.
 */
async function flow({ url, writers = 1, readers = 1, docs, rate, seconds }) {
  const ws = Array.from({ length: writers }, () => client(url));
  const rs = Array.from({ length: readers }, () => client(url));
  await Promise.all([...ws, ...rs].map(connected));
  const handles = [];
  for (let d = 0; d < docs; d++) {
    const w = ws[d % writers];
    const h = w.repo.create({ seq: 0 });
    handles.push(h);
  }
  const sent = handles.map(() => []);
  const latencies = [];
  const seen = rs.map(() => handles.map(() => 0));
  await Promise.all(
    rs.map((r, ri) =>
      Promise.all(
        handles.map(async (h, d) => {
          const rh = await r.repo.find(h.url);
          rh.on("change", ({ doc }) => {
            const now = performance.now();
            for (let n = seen[ri][d] + 1; n <= doc.seq; n++) latencies.push(now - sent[d][n]);
            seen[ri][d] = Math.max(seen[ri][d], doc.seq);
          });
        }),
      ),
    ),
  );
  // Pace in 10 ms ticks, round-robin over the documents.
  const total = Math.round(rate * seconds);
  const start = performance.now();
  let made = 0;
  let next = 0;
  while (made < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
    for (; made < due; made++) {
      const d = next++ % docs;
      const n = sent[d].length === 0 ? 1 : sent[d].length;
      sent[d][n] = performance.now();
      handles[d].change(doc => {
        doc.seq = n;
      });
    }
    await sleep(10);
  }
  const elapsed = (performance.now() - start) / 1000;
  // Let the last changes arrive (bounded).
  const expected = total * readers;
  const deadline = performance.now() + 15000;
  while (latencies.length < expected && performance.now() < deadline) await sleep(20);
  const result = { ...summary(latencies), expected, achieved_rate: total / elapsed };
  for (const c of [...ws, ...rs]) await c.repo.shutdown();
  return result;
}

async function latency(p) {
  return flow({ ...p, writers: 1, readers: 1 });
}

/** Rising rates until p99 passes 1 s, changes go missing or writers fall behind. */
async function throughput({ url, rates, seconds, docs }) {
  const steps = [];
  for (const rate of rates) {
    const r = await flow({ url, writers: 2, readers: 2, docs, rate, seconds });
    steps.push({ rate, ...r });
    if (r.p99_ms === null || r.p99_ms > 1000 || r.count < r.expected || r.achieved_rate < 0.9 * rate) break;
  }
  return { steps };
}

/** A fresh client fetches a big document the server holds. */
async function large({ url, file }) {
  const bytes = new Uint8Array(readFileSync(file));
  let t = performance.now();
  const loaded = Automerge.load(bytes);
  const load_ms = performance.now() - t;
  const heads = JSON.stringify(Automerge.getHeads(loaded).sort());
  const a = client(url);
  await connected(a);
  const h = a.repo.import(bytes);
  // A verifier follows until it has everything: then the server has it too.
  const v = client(url);
  await connected(v);
  const vh = await v.repo.find(h.url);
  await until(() => headsOf(vh) === heads, "the server never had the whole document");
  await v.repo.shutdown();
  t = performance.now();
  const c = client(url);
  const ch = await c.repo.find(h.url);
  await until(() => headsOf(ch) === heads, "the fresh client never got the whole document", 1);
  const fetch_ms = performance.now() - t;
  const text_len = ch.doc().text.length;
  await c.repo.shutdown();
  await a.repo.shutdown();
  return { load_ms, fetch_ms, text_len, bytes: bytes.length };
}

/**
 * `docs` small documents: first sync to a fresh device, cold open from
 * disk, and a reconnect with nothing changed.
 */
async function many({ url, docs, dirA, dirB, serverPid }) {
  const rssBefore = rssOf(serverPid);
  const a = client(url, dirA);
  await connected(a);
  const urls = [];
  for (let i = 0; i < docs; i++) urls.push(a.repo.create({ title: `doc ${i}`, n: i }).url);
  await a.repo.flush();
  // Wait until the server holds every document (a verifier asks for each
  // until it is no longer unavailable), as synkro waits for its relay.
  const v = client(url);
  await connected(v);
  for (const u of urls) {
    await until(async () => {
      try {
        return (await v.repo.find(u)).isReady();
      } catch {
        // An unavailable document is cached as such; forget it so the next
        // find asks the server again. A handle still loading cannot be
        // removed yet: then the next round simply asks again.
        try {
          await v.repo.removeFromCache(u.replace("automerge:", ""));
        } catch {}
        return false;
      }
    }, "the server never got every document", 50);
  }
  await v.repo.shutdown();
  // First sync: a fresh device gets every document through the server.
  let t = performance.now();
  const b = client(url, dirB);
  await Promise.all(urls.map(u => b.repo.find(u)));
  const first_sync_ms = performance.now() - t;
  await b.repo.flush();
  await a.repo.shutdown();
  await b.repo.shutdown();
  await sleep(500);
  const rssAfter = rssOf(serverPid);
  // Cold open: every document back from disk, no network.
  t = performance.now();
  const cold = new Repo({ storage: new NodeFSStorageAdapter(dirB) });
  const opened = await Promise.all(urls.map(u => cold.find(u)));
  const cold_open_ms = performance.now() - t;
  if (opened.some(h => h.doc().title === undefined)) throw new Error("a document came back empty");
  await cold.shutdown();
  // Reconnect: open every document, connect, count traffic until quiet.
  const r = client(url, dirB);
  await Promise.all(urls.map(u => r.repo.find(u)));
  t = performance.now();
  const counted = { sent: r.adapter.sent, received: r.adapter.received };
  await connected(r);
  while (performance.now() - r.adapter.lastTraffic < 1000) await sleep(50);
  const reconnect_ms = r.adapter.lastTraffic - t;
  const result = {
    first_sync_ms,
    cold_open_ms,
    reconnect_ms,
    reconnect_messages: r.adapter.sent - counted.sent + r.adapter.received - counted.received,
    reconnect_bytes: r.adapter.bytesSent + r.adapter.bytesReceived,
    server_rss_per_doc: (rssAfter - rssBefore) / docs,
  };
  await r.repo.shutdown();
  return result;
}

/** Server memory per idle client connection. */
async function idle({ url, connections, serverPid }) {
  const warm = client(url);
  await connected(warm);
  await sleep(300);
  const before = rssOf(serverPid);
  const cs = [];
  for (let i = 0; i < connections; i++) {
    const c = client(url);
    cs.push(c);
    if (i % 50 === 49) await Promise.all(cs.slice(-50).map(connected));
  }
  await Promise.all(cs.map(connected));
  await sleep(500);
  const after = rssOf(serverPid);
  for (const c of [warm, ...cs]) await c.repo.shutdown();
  return { per_connection_bytes: (after - before) / connections };
}

/**
 * `typists` clients type into one text at `keystrokes` per second each. A
 * keystroke also bumps the typist's counter, so every other client knows
 * when it arrived.
 */
async function typists({ url, typists: n, keystrokes, seconds }) {
  const cs = Array.from({ length: n }, () => client(url));
  await Promise.all(cs.map(connected));
  const first = cs[0].repo.create({ text: "", typed: Object.fromEntries(cs.map((_, i) => [`t${i}`, 0])) });
  const hs = [first, ...(await Promise.all(cs.slice(1).map(c => c.repo.find(first.url))))];
  const sent = cs.map(() => []);
  const seen = cs.map(() => cs.map(() => 0));
  const latencies = [];
  hs.forEach((h, reader) =>
    h.on("change", ({ doc }) => {
      const now = performance.now();
      cs.forEach((_, w) => {
        if (w === reader) return;
        const got = doc.typed[`t${w}`] ?? 0;
        for (let k = seen[reader][w] + 1; k <= got; k++) latencies.push(now - sent[w][k]);
        seen[reader][w] = Math.max(seen[reader][w], got);
      });
    }),
  );
  const per = Math.round(keystrokes * seconds);
  const gap = 1000 / keystrokes;
  const start = performance.now();
  await Promise.all(
    hs.map(async (h, w) => {
      await sleep(Math.random() * gap);
      for (let k = 1; k <= per; k++) {
        sent[w][k] = performance.now();
        h.change(doc => {
          Automerge.splice(doc, ["text"], doc.text.length, 0, String.fromCharCode(97 + (w % 26)));
          doc.typed[`t${w}`] = k;
        });
        const wait = start + k * gap - performance.now();
        if (wait > 0) await sleep(wait);
      }
    }),
  );
  const expected = per * n * (n - 1);
  const deadline = performance.now() + 15000;
  while (latencies.length < expected && performance.now() < deadline) await sleep(20);
  for (const c of cs) await c.repo.shutdown();
  return { ...summary(latencies), expected };
}

async function server(dir) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise(r => wss.on("listening", r));
  new Repo({
    network: [new WebSocketServerAdapter(wss)],
    storage: new NodeFSStorageAdapter(dir),
    peerId: "storage-server",
    sharePolicy: async () => false,
  });
  console.log(`listening ${wss.address().port}`);
}

const [what, arg] = process.argv.slice(2);
const scenarios = { latency, throughput, large, many, idle, typists };
if (what === "server") {
  await server(arg);
} else if (scenarios[what]) {
  const result = await scenarios[what](JSON.parse(arg));
  console.log(JSON.stringify(result));
  process.exit(0);
} else {
  console.error(`usage: node bench.mjs server DIR | node bench.mjs {${Object.keys(scenarios).join(",")}} JSON`);
  process.exit(2);
}
