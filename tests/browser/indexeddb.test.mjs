// The npm package persists to IndexedDB: a page edits, reloads, and the
// data is still there without any relay; a second tab cannot open the same
// repo while the first has it.
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

test('a second tab cannot open a repo another tab has open', async () => {
  const context = await browser.newContext();
  const first = await context.newPage();
  const second = await context.newPage();
  await loadTestPage(first);
  await loadTestPage(second);
  await first.evaluate(async () => {
    window.repo = await window.synkro.openRepo({ name: 'two-tabs' });
  });
  const refused = await second.evaluate(async () => {
    try {
      await window.synkro.openRepo({ name: 'two-tabs' });
      return 'opened';
    } catch (e) {
      return `${e.name}: ${e.message}`;
    }
  });
  assert.match(refused, /^StorageError: .*open in another tab/);
  // Once the first tab closes it, the second may open it.
  await first.evaluate(() => window.repo.close());
  const opened = await second.evaluate(async () => {
    const repo = await window.synkro.openRepo({ name: 'two-tabs' });
    return repo.list().length;
  });
  assert.equal(opened, 0);
  await context.close();
});

test('a tab takes a repo over from another, which saves its edits and stops', async () => {
  const context = await browser.newContext();
  const first = await context.newPage();
  const second = await context.newPage();
  await loadTestPage(first);
  await loadTestPage(second);
  const id = await first.evaluate(async () => {
    window.repo = await window.synkro.openRepo({ name: 'handover' });
    window.closedBecause = null;
    window.repo.onClose(({ reason }) => { window.closedBecause = reason; });
    const doc = await window.repo.create();
    doc.set('written', 'in the first tab, not yet flushed');
    window.doc = doc;
    return doc.id;
  });
  const taken = await second.evaluate(async (id) => {
    const repo = await window.synkro.openRepo({ name: 'handover', takeOver: true });
    window.repo = repo;
    return (await repo.find(id)).get('written');
  }, id);
  assert.equal(taken, 'in the first tab, not yet flushed', 'the edit was sealed and saved before the handover');
  const after = await first.evaluate(async () => {
    let write;
    try {
      window.doc.set('late', 'after the handover');
      await window.doc.flush();
      write = 'stored';
    } catch (e) {
      write = e.name;
    }
    return { reason: window.closedBecause, closed: window.repo.closed, write };
  });
  assert.equal(after.reason, 'taken-over');
  assert.equal(after.closed, true);
  assert.equal(after.write, 'StorageError', 'the old tab can no longer write');
  // And the repo in the second tab is whole and writable.
  const ok = await second.evaluate(async (id) => {
    const doc = await window.repo.find(id);
    doc.set('second', true);
    await doc.flush();
    return doc.value();
  }, id);
  assert.deepEqual(ok, { written: 'in the first tab, not yet flushed', second: true });
  await context.close();
});
