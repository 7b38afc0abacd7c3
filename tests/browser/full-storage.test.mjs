// A browser repo whose storage quota runs out: edits go on in memory, the
// repo says "full" (storageState, onEvent), and once the quota has room
// again every edit is written by itself and survives a reload.
//
// The quota is the browser's own: Chromium's DevTools protocol
// (`Storage.overrideQuotaForOrigin`) gives the page's origin a small quota,
// so IndexedDB really fails with QuotaExceededError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relay, browser, useRelayAndChromium, loadTestPage, until } from './harness.mjs';

// The relay only serves the page here; nothing syncs.
useRelayAndChromium();

test('a full quota pauses writes, keeps edits, and they are stored once there is room', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await loadTestPage(page);
  const cdp = await context.newCDPSession(page);
  const origin = new URL(relay.http).origin;

  // A quota of 2 MiB, set before the repo opens its database (Chromium
  // applies an override to databases opened after it).
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 2 * 1024 * 1024 });
  await page.evaluate(async () => {
    window.repo = await window.synkro.openRepo({ name: 'quota' });
    window.events = [];
    window.repo.onEvent((e) => {
      if (e.type === 'storage') window.events.push(e.state);
    });
    window.doc = await window.repo.create();
    window.doc.set('title', 'before the quota');
    await window.doc.flush();
  });

  // Edits of 64 KiB of incompressible text each, until a write is refused.
  const filled = await page.evaluate(async () => {
    const piece = () => {
      const bytes = crypto.getRandomValues(new Uint8Array(48 * 1024));
      return btoa(String.fromCharCode(...bytes));
    };
    let edits = 0;
    let error = null;
    while (window.repo.storageState() === 'ok' && edits < 200) {
      window.doc.set(`k${edits}`, piece());
      edits += 1;
      try {
        await window.doc.flush();
      } catch (e) {
        error = `${e.name}: ${e.message}`;
      }
    }
    // Editing goes on while full: kept in memory.
    for (let i = 0; i < 3; i++) {
      window.doc.set(`k${edits}`, piece());
      edits += 1;
    }
    return { edits, error, state: window.repo.storageState(), keys: Object.keys(window.doc.value()).length };
  });
  assert.equal(filled.state, 'full', `the repo says full (${JSON.stringify(filled)})`);
  assert.match(filled.error ?? '', /^StorageError: .*(full|quota)/i, 'flush says why it cannot finish');
  assert.equal(filled.keys, filled.edits + 1, 'every edit is in the document');

  // Room again: the repo retries by itself.
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 1024 * 1024 * 1024 });
  const raised = Date.now();
  await until('the repo to store again', () => page.evaluate(() => window.repo.storageState() === 'ok'), 30000);
  console.log(`quota full after ${filled.edits - 3} edits of 64 KiB; writes resumed ${Date.now() - raised} ms after the quota was raised`);
  await page.evaluate(() => window.doc.flush());
  const events = await page.evaluate(() => window.events);
  assert.deepEqual(events.slice(0, 1), ['full']);
  assert.equal(events.at(-1), 'ok');

  // Everything survives a reload.
  const expected = await page.evaluate(() => ({ id: window.doc.id, value: window.doc.value() }));
  await page.reload();
  await page.waitForFunction(() => window.ready);
  const after = await page.evaluate(async (id) => {
    const repo = await window.synkro.openRepo({ name: 'quota' });
    return { value: (await repo.find(id)).value(), problems: repo.loadProblems() };
  }, expected.id);
  assert.deepEqual(after.problems, []);
  assert.equal(Object.keys(after.value).length, filled.edits + 1);
  assert.deepEqual(after.value, expected.value);
  await context.close();
});
