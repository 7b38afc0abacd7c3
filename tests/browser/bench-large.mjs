// The browser side of benchmark scenario 3 (run by synkro-bench, not a
// test): a page of headless Chromium joins a long document and a short one
// through the relay, then notes when each keystroke the native writer types
// arrives, and which main-thread tasks ran over 50 ms meanwhile. Argument:
// one JSON object {page, relay, long, short, automerge, save, stopFile,
// keystrokes}: `long`/`short` are {token, length} (the text's length once
// joined), `automerge` the path of @automerge/automerge's browser bundle
// and `save` a file with the long document's Automerge save(), which the
// page also loads with @automerge/automerge to compare. Prints `ready` once
// it follows both documents; after `stopFile` appears (or every keystroke
// arrived) it prints `result {...}`.
import { existsSync, readFileSync } from 'node:fs';
import { launchChromium, openBenchPage } from './harness.mjs';

const params = JSON.parse(process.argv[2]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const browser = await launchChromium();
try {
  const page = await openBenchPage(browser, params.page);
  await page.addScriptTag({ path: params.automerge });
  const save = readFileSync(params.save).toString('base64');

  const joined = await page.evaluate(
    async ({ relay, long, short, save }) => {
      window.longTasks = [];
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) window.longTasks.push([e.startTime, e.duration]);
      }).observe({ type: 'longtask', buffered: true });
      const longest = (from, to) =>
        Math.max(0, ...window.longTasks.filter(([at]) => at >= from && at <= to).map(([, d]) => d));

      // @automerge/automerge's own load() of the same bytes, in this page.
      const bytes = Uint8Array.from(atob(save), (c) => c.charCodeAt(0));
      window.Automerge.load(window.Automerge.save(window.Automerge.from({ warm: 'up' })));
      let start = performance.now();
      const plain = window.Automerge.load(bytes);
      const loadMs = performance.now() - start;
      if (plain.text.length !== long.length) throw new Error(`Automerge loaded ${plain.text.length} characters`);

      const repo = await window.synkro.openRepo({ storage: 'memory', relays: [relay] });
      const arrived = (doc, length) => {
        try {
          return doc.get('text')?.length === length;
        } catch {
          return false; // joined; the content has not arrived yet
        }
      };
      const join = async ({ token, length }) => {
        const doc = await repo.join(token);
        while (!arrived(doc, length)) await new Promise((r) => setTimeout(r, 5));
        return doc;
      };
      start = performance.now();
      const longDoc = await join(long);
      const joinMs = performance.now() - start;
      const joinLongestTask = longest(start, performance.now());
      const shortDoc = await join(short);

      // Keystrokes add characters at the end: count them from the patches.
      window.receipts = { long: [], short: [] };
      for (const [name, doc] of [['long', longDoc], ['short', shortDoc]]) {
        doc.onChange((patches) => {
          const now = performance.timeOrigin + performance.now();
          for (const p of patches) {
            if (p.action === 'splice') for (let i = 0; i < p.text.length; i++) window.receipts[name].push(now);
          }
        });
      }
      window.typingFrom = performance.now();
      return { loadMs, joinMs, joinLongestTask };
    },
    { relay: params.relay, long: params.long, short: params.short, save },
  );
  console.log('ready');
  const done = () =>
    page.evaluate((n) => window.receipts.long.length >= n && window.receipts.short.length >= n, params.keystrokes);
  while (!existsSync(params.stopFile) || !(await done())) {
    if (existsSync(params.stopFile)) {
      // The writer is done: wait at most 15 s more for the rest.
      const deadline = Date.now() + 15000;
      while (Date.now() < deadline && !(await done())) await sleep(100);
      break;
    }
    await sleep(50);
  }
  const typing = await page.evaluate(() => {
    const during = window.longTasks.filter(([at]) => at >= window.typingFrom);
    return {
      receipts: window.receipts,
      typingLongestTask: Math.max(0, ...during.map(([, d]) => d)),
      typingLongTasks: during.length,
    };
  });
  console.log(`result ${JSON.stringify({ ...joined, ...typing })}`);
} finally {
  await browser.close();
}
