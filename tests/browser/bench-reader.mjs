// The browser side of benchmark scenario 7 (run by synkro-bench, not a
// test): one page of headless Chromium joins documents through the relay
// and notes when each change arrives. Argument: one JSON object
// {page, relay, tokens, stopFile, expected}. Prints `ready` once it follows
// every document; after `stopFile` appears it waits for `expected` changes
// (at most 15 s more) and prints `result [[doc, seq, wallMs], ...]`.
// With SYNKRO_BENCH_PROFILE=file.cpuprofile it records the page's CPU
// profile from `ready` to the result (open it in Chromium's DevTools).
import { existsSync, writeFileSync } from 'node:fs';
import { launchChromium, openBenchPage } from './harness.mjs';

const params = JSON.parse(process.argv[2]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const browser = await launchChromium();
try {
  const page = await openBenchPage(browser, params.page);
  await page.evaluate(async ({ relay, tokens }) => {
    const repo = await window.synkro.openRepo({ storage: 'memory', relays: [relay] });
    const docs = [];
    for (const token of tokens) docs.push(await repo.join(token));
    const seq = (doc) => {
      try {
        return doc.get('seq');
      } catch {
        return undefined; // joined; the content has not arrived yet
      }
    };
    for (const doc of docs) {
      while (seq(doc) === undefined) await new Promise((r) => setTimeout(r, 20));
    }
    window.receipts = [];
    docs.forEach((doc, d) => {
      let seen = seq(doc);
      doc.onChange(() => {
        const now = performance.timeOrigin + performance.now();
        const n = seq(doc);
        for (let i = seen + 1; i <= n; i++) window.receipts.push([d, i, now]);
        seen = Math.max(seen, n);
      });
    });
  }, params);
  const profileTo = process.env.SYNKRO_BENCH_PROFILE;
  const cdp = profileTo ? await page.context().newCDPSession(page) : null;
  if (cdp) {
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.start');
  }
  console.log('ready');
  while (!existsSync(params.stopFile)) await sleep(50);
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline && (await page.evaluate(() => window.receipts.length)) < params.expected) {
    await sleep(100);
  }
  if (cdp) {
    const { profile } = await cdp.send('Profiler.stop');
    writeFileSync(profileTo, JSON.stringify(profile));
  }
  console.log(`result ${JSON.stringify(await page.evaluate(() => window.receipts))}`);
} finally {
  await browser.close();
}
