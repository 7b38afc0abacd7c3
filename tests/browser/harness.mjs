// Shared helpers of the browser tests: the workspace's binaries on loopback,
// a site with the built npm package, and headless Chromium.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, cpSync, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, dirname, normalize, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const target = process.env.CARGO_TARGET_DIR || join(root, 'target');

export function bin(name) {
  const path = join(target, 'debug', name);
  if (!existsSync(path)) throw new Error(`${path} is not built; run scripts/test.sh`);
  return path;
}

export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), `synkro-${prefix}-`));
}

/** A directory serving the npm package under /pkg and a blank page at /. */
export function stageSite() {
  const pkg = join(root, 'bindings', 'wasm', 'pkg');
  if (!existsSync(join(pkg, 'index.js'))) throw new Error(`${pkg} is not built; run scripts/build-wasm.sh`);
  const site = tempDir('site');
  cpSync(pkg, join(site, 'pkg'), { recursive: true });
  // The page the benchmark's browser peer loads too (bench/src/browser.rs).
  cpSync(join(root, 'tests', 'browser', 'test-page.html'), join(site, 'index.html'));
  return site;
}

/** The relay and browser of the test file that called `useRelayAndChromium` (live bindings). */
export let relay;
export let browser;

/**
 * For a test file: start a relay serving `webRoot` (default: the test page)
 * and headless Chromium before its tests, stop both after them; the file
 * imports `relay` and `browser` from here.
 */
export function useRelayAndChromium({ webRoot } = {}) {
  before(async () => {
    relay = await startRelay({ webRoot: webRoot ?? stageSite() });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await relay?.stop();
  });
}

/** Start synkro-relay on loopback (every transport on port 0). */
export async function startRelay({ webRoot, extra = [] } = {}) {
  const dataDir = tempDir('relay');
  const args = [
    '--data-dir', dataDir, '--http', '127.0.0.1:0', '--stun', '127.0.0.1:0',
    '--listen', '/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/tcp/0/ws,/ip4/127.0.0.1/udp/0/webrtc-direct',
    ...(webRoot ? ['--web-root', webRoot] : []),
    ...extra,
  ];
  const child = spawn(bin('synkro-relay'), args, {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
  });
  const lines = [];
  const rl = createInterface({ input: child.stdout });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`relay not ready: ${lines}`)), 30000);
    child.once('exit', (code) => reject(new Error(`relay exited with ${code}: ${lines}`)));
    rl.on('line', (line) => {
      lines.push(line);
      const listening = lines.filter((l) => l.startsWith('listening ')).length;
      if (listening >= 3 && lines.some((l) => l.startsWith('http '))) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const addrs = lines.filter((l) => l.startsWith('listening ')).map((l) => l.slice('listening '.length));
  const pick = (pred) => addrs.find(pred);
  return {
    dataDir,
    http: `http://${lines.find((l) => l.startsWith('http ')).slice(5)}`,
    tcp: pick((a) => a.includes('/tcp/') && !a.includes('/ws')),
    ws: pick((a) => a.includes('/ws/')),
    webrtc: pick((a) => a.includes('/webrtc-direct')),
    stun: lines.find((l) => l.startsWith('stun '))?.slice('stun '.length),
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', resolve);
      child.kill('SIGTERM');
    }),
  };
}

/** Open the test page (of the current relay, or at `url`) and wait until the package is ready. */
export async function loadTestPage(page, url = `${relay.http}/index.html`) {
  await page.goto(url);
  await page.waitForFunction(() => window.ready);
  await page.evaluate(() => window.ready);
}

/** A fresh browser context (its own storage) on the test page; page errors are logged under `name`. */
export async function openTestPage(name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`${name} page error:`, e));
  await loadTestPage(page);
  return { context, page };
}

/** A benchmark script's page (`bench-*.mjs`) of `chromium` at `url`, the package ready. */
export async function openBenchPage(chromium, url) {
  const page = await chromium.newPage();
  page.on('pageerror', (e) => console.error('bench page error:', e));
  await loadTestPage(page, url);
  return page;
}

/** A `synkro` CLI device with its own home. */
export function cliDevice() {
  const home = tempDir('home');
  const run = (...args) =>
    execFileSync(bin('synkro'), ['--home', home, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .trim()
      .split('\n')
      .pop();
  return { home, run };
}

/** Headless Chromium from the system (Debian's package). */
export async function launchChromium() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  // Loopback ICE candidates (see `webrtcContext`); `window.gc()` for the
  // tests of handles the app drops.
  const args = ['--no-sandbox', '--disable-dev-shm-usage', '--allow-loopback-in-peer-connection', '--js-flags=--expose-gc'];
  return chromium.launch({ executablePath, args });
}

/**
 * A browser context whose pages can use WebRTC over loopback. Chromium
 * gathers loopback candidates only with --allow-loopback-in-peer-connection
 * (see `launchChromium`) and, like any address off the default route, only
 * for pages with media permission. Without both, a host whose only
 * interface is `lo` (CI sandboxes) gives WebRTC no candidate at all.
 */
export function webrtcContext(browser) {
  return browser.newContext({ permissions: ['camera', 'microphone'] });
}

/** Poll `fn` until it returns a truthy value or `ms` pass. */
export async function until(what, fn, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Edit latency between two users (`{page}` each, with `window.doc` open on
 * the same document): `n` edits of the key `counter`, alternating sides,
 * numbered from `base`; the receiving page timestamps the change event, the
 * sending page the edit. Returns the latencies in ms, sorted.
 */
export async function editLatencies(a, b, n, base = 0) {
  for (const u of [a, b]) {
    await u.page.evaluate(() => {
      if (window.seen) return;
      window.seen = {};
      window.doc.onChange(() => {
        const v = window.doc.get('counter');
        if (v !== undefined && !(v in window.seen)) window.seen[v] = Date.now();
      });
    });
  }
  const latencies = [];
  for (let i = base; i < base + n; i++) {
    const [from, to] = i % 2 ? [b, a] : [a, b];
    const sent = await from.page.evaluate((i) => {
      const t = Date.now();
      window.doc.set('counter', i);
      return t;
    }, i);
    const seen = await until(`edit ${i} to arrive`, () => to.page.evaluate((i) => window.seen[i], i), 20000);
    latencies.push(seen - sent);
  }
  return latencies.sort((x, y) => x - y);
}

/** The built web demo (web-demo/dist). */
export function demoDist() {
  const dist = join(root, 'web-demo', 'dist');
  if (!existsSync(join(dist, 'index.html'))) throw new Error(`${dist} is not built; run scripts/build-demo.sh`);
  return dist;
}

/** Where screenshots go (tests/browser/output/<name>). */
export function outputDir(name) {
  const dir = join(root, 'tests', 'browser', 'output', name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * A plain static file server for `dir` on loopback that answers
 * `/bootstrap` with `bootstrap` (what the relay would say), so that a page
 * keeps being served while the relay is down.
 */
export async function staticServer(dir, bootstrap) {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.svg': 'image/svg+xml', '.map': 'application/json' };
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/bootstrap') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(bootstrap));
    }
    const file = normalize(join(dir, path === '/' ? 'index.html' : path));
    if (!file.startsWith(dir)) return res.writeHead(403).end();
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}
