// The npm package persists to IndexedDB: a page edits, reloads, and the
// data is still there without any relay (tabs sharing a repo: tabs.test.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { browser, useRelayAndChromium, loadTestPage } from './harness.mjs';

// The relay only serves the page here; nothing syncs.
useRelayAndChromium();

test('a page edits, reloads, and everything comes back from IndexedDB', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await loadTestPage(page);
  const { id, member } = await page.evaluate(async () => {
    const repo = await window.synkro.openRepo({ name: 'reload-test' });
    const doc = await repo.create();
    doc.set('title', 'Groceries');
    doc.set('items', ['milk']);
    doc.insert('items', 1, 'tea');
    doc.setText('note', 'buy before noon');
    doc.splice('note', 0, 1, 'B');
    doc.increment('visits', 2);
    await doc.flush();
    return { id: doc.id, member: repo.memberId };
  });

  await page.reload();
  await page.waitForFunction(() => window.ready);
  const after = await page.evaluate(async (id) => {
    const repo = await window.synkro.openRepo({ name: 'reload-test' });
    return { list: repo.list(), value: (await repo.find(id)).value(), member: repo.memberId, problems: repo.loadProblems() };
  }, id);
  assert.deepEqual(after.list, [id]);
  assert.deepEqual(after.value, {
    title: 'Groceries',
    items: ['milk', 'tea'],
    note: 'Buy before noon',
    visits: 2,
  });
  assert.equal(after.member, member, 'the device keeps its identity');
  assert.deepEqual(after.problems, []);
  await context.close();
});
