// The browser side of benchmark scenario 10 (run by synkro-bench, not a
// test): the npm package's document API in a page of headless Chromium,
// against @automerge/automerge in the same page. Argument: one JSON object
// {page, automerge, keystrokes, elements}: `page` the staged test page,
// `automerge` the path of @automerge/automerge's browser bundle. Prints
// `result {...}` (times in ms).
//
// Per keystroke: appending one character to a text, `keystrokes` times, by
// `change(fn)` with `splice()`, by the path method `splice(path, …)`, and by
// Automerge's own `change` with its `splice`; the main-thread cost of the
// call (synkro seals, stores and sends afterwards, off the call).
// doc() on a document holding a list of `elements` small maps: the first
// call (the whole document), a call when nothing changed, and the call
// after one element changed (the change's patches applied), against
// `value()` (the whole document as JSON) and Automerge's `toJS`.
// Tabs sharing one repo: an edit in one guest tab seen in another (through
// the tab holding the repo) against one made in the holding tab, and how
// long after the holding tab closes a guest holds the repo.
import { launchChromium, loadTestPage, openBenchPage } from './harness.mjs';

const params = JSON.parse(process.argv[2]);
const browser = await launchChromium();
try {
  const page = await openBenchPage(browser, params.page);
  await page.addScriptTag({ path: params.automerge });
  const result = await page.evaluate(async ({ keystrokes, elements }) => {
    const { openRepo, splice } = window.synkro;
    const A = window.Automerge;
    const repo = await openRepo({ storage: 'memory' });
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    // Best of 3 runs of `fn` (the page shares the machine).
    const best = async (fn) => {
      const runs = [];
      for (let i = 0; i < 3; i++) runs.push(await fn());
      return Math.min(...runs);
    };

    const perKeystroke = async (edit) => best(async () => {
      const h = await repo.create();
      h.change((d) => { d.text = ''; });
      const start = performance.now();
      for (let i = 0; i < keystrokes; i++) edit(h, i);
      const ms = (performance.now() - start) / keystrokes;
      await h.flush();
      if (h.doc().text.length !== keystrokes) throw new Error('lost keystrokes');
      return ms;
    });
    const changeFn = await perKeystroke((h, i) => h.change((d) => splice(d, ['text'], i, 0, 'x')));
    const pathCall = await perKeystroke((h, i) => h.splice('text', i, 0, 'x'));
    const automerge = await best(async () => {
      let doc = A.from({ text: '' });
      const start = performance.now();
      for (let i = 0; i < keystrokes; i++) doc = A.change(doc, (d) => A.splice(d, ['text'], i, 0, 'x'));
      const ms = (performance.now() - start) / keystrokes;
      if (doc.text.length !== keystrokes) throw new Error('lost keystrokes');
      return ms;
    });

    // A document with `elements` small maps.
    const h = await repo.create();
    const items = Array.from({ length: elements }, (_, i) => ({ i, name: `item ${i}`, done: false }));
    h.change((d) => { d.items = items; });
    // Handles never read: the first doc() of each reads the whole document.
    const firstMs = await best(async () => {
      const copy = await repo.import(h.export());
      const start = performance.now();
      copy.doc();
      return performance.now() - start;
    });
    const fresh = await repo.import(h.export());
    const first = fresh.doc();
    const valueMs = await best(() => { const s = performance.now(); fresh.value(); return performance.now() - s; });
    const calls = 10000;
    let s = performance.now();
    for (let i = 0; i < calls; i++) if (fresh.doc() !== first) throw new Error('changed');
    const unchangedMs = (performance.now() - s) / calls;
    const afterChange = [];
    const changeOnly = [];
    for (let k = 0; k < 50; k++) {
      s = performance.now();
      fresh.change((d) => { d.items[(k * 97) % elements].done = k % 2 === 0; });
      changeOnly.push(performance.now() - s);
      s = performance.now();
      fresh.doc();
      afterChange.push(changeOnly[k] + performance.now() - s);
    }
    const shared = fresh.doc().items[1] === first.items[1];
    let plain = A.from({ items });
    const toJsMs = await best(() => { const s = performance.now(); A.toJS(plain); return performance.now() - s; });
    const amChange = [];
    for (let k = 0; k < 50; k++) {
      s = performance.now();
      plain = A.change(plain, (d) => { d.items[(k * 97) % elements].done = k % 2 === 0; });
      amChange.push(performance.now() - s);
    }
    return {
      changeFn, pathCall, automerge,
      firstMs, valueMs, unchangedMs, changeAndDocMs: median(afterChange), changeMs: median(changeOnly),
      automergeChangeMs: median(amChange), toJsMs, shared,
    };
  }, params);
  Object.assign(result, await tabs(browser, params.page));
  console.log(`result ${JSON.stringify(result)}`);
} finally {
  await browser.close();
}

/** Three tabs of one profile on one repo: edit latencies and the take-over. */
async function tabs(browser, url) {
  const context = await browser.newContext();
  const pages = [];
  for (let i = 0; i < 3; i++) {
    const page = await context.newPage();
    page.on('pageerror', (e) => console.error('bench tab error:', e));
    await loadTestPage(page, url);
    await page.evaluate(async () => {
      window.repo = await window.synkro.openRepo({ name: 'bench-tabs' });
      window.seen = new Map();
    });
    pages.push(page);
  }
  const [host, sender, receiver] = pages;
  const id = await host.evaluate(async () => {
    const doc = await window.repo.create();
    doc.change((d) => { d.sent = []; });
    await doc.flush();
    return doc.id;
  });
  for (const page of pages) {
    await page.evaluate(async (id) => {
      window.doc = await window.repo.find(id);
      // Every entry is timed when it first shows (a batch shows several at once).
      window.doc.on('change', ({ doc }) => {
        const now = performance.timeOrigin + performance.now();
        for (const n of doc.sent ?? []) if (!window.seen.has(n)) window.seen.set(n, now);
      });
    }, id);
  }
  const edits = 100;
  const latencies = async (from, base) => {
    const sent = [];
    for (let k = base; k < base + edits; k++) {
      sent.push(await from.evaluate((k) => {
        window.doc.change((d) => { d.sent.push(k); });
        return performance.timeOrigin + performance.now();
      }, k));
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 500));
    const seen = new Map(await receiver.evaluate(() => [...window.seen]));
    const ms = sent.map((t, i) => (seen.get(base + i) ?? Infinity) - t).sort((a, b) => a - b);
    return { p50: ms[Math.floor(ms.length / 2)], p99: ms[Math.floor(ms.length * 0.99)] };
  };
  const guestToGuest = await latencies(sender, 0);
  const hostToGuest = await latencies(host, 1000);
  // The holding tab goes away; each guest notes when it holds the repo.
  for (const page of [sender, receiver]) {
    await page.evaluate(() => {
      window.heldAt = null;
      const poll = setInterval(() => {
        if (!window.repo.isGuest) { window.heldAt = performance.timeOrigin + performance.now(); clearInterval(poll); }
      }, 2);
    });
  }
  const closing = await host.evaluate(() => performance.timeOrigin + performance.now());
  await host.close();
  let heldAt = null;
  for (let i = 0; i < 500 && heldAt === null; i++) {
    await new Promise((r) => setTimeout(r, 10));
    const times = await Promise.all([sender, receiver].map((p) => p.evaluate(() => window.heldAt)));
    heldAt = times.find((t) => t !== null) ?? null;
  }
  await context.close();
  return {
    tabGuestP50: guestToGuest.p50, tabGuestP99: guestToGuest.p99,
    tabHostP50: hostToGuest.p50, tabHostP99: hostToGuest.p99,
    takeOverMs: heldAt === null ? Infinity : heldAt - closing,
  };
}
