// The Automerge-style API of the npm package in headless Chromium:
// `change(fn)` on a draft with Automerge's proxy semantics, `doc()`
// snapshots that share what did not change, `on('change')`, history and
// past versions; and documents in and out of the real
// `@automerge/automerge` package (in Node), both ways, history included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as Automerge from '@automerge/automerge';
import { relay, useRelayAndChromium, openTestPage as page, until } from './harness.mjs';

useRelayAndChromium();

test('change(fn) edits maps, lists, text and counters in one change; doc() shares what did not change', async () => {
  const { context, page: p } = await page('editor');
  const out = await p.evaluate(async () => {
    const { openRepo, Counter, splice, updateText } = window.synkro;
    const declared = ['openRepo', 'ready', 'Repo', 'DocHandle', 'Counter', 'ImmutableString', 'splice', 'updateText', 'SynkroError', 'NotFoundError'];
    const missing = declared.filter((name) => !(name in window.synkro));
    const repo = await openRepo({ storage: 'memory' });
    const h = await repo.create();
    const changes = [];
    const stop = h.on('change', ({ doc, patches }) => changes.push({ title: doc.title, actions: patches.map((p) => p.action) }));
    h.change((d) => {
      d.title = 'Lisbon trip';
      d.todos = [{ text: 'book flights', done: false }, { text: 'pack', done: false }];
      d.votes = new Counter(1);
      d.meta = { created: new Date(1700000000000), tags: ['travel'] };
    }, { message: 'start' });
    const v1 = h.doc();
    const first = v1.todos[0];
    h.change((d) => {
      const flights = d.todos[0];
      d.todos.unshift({ text: 'renew passport', done: false });
      flights.done = true; // still the same item, although its index moved
      d.todos.push({ text: 'water plants', done: false });
      d.todos.insertAt(1, { text: 'buy adapter', done: false });
      d.todos.deleteAt(4); // 'water plants', now last of five
      d.votes.increment(2);
      splice(d, ['title'], 0, 0, 'A ');
      d.meta.tags.push('2026');
    });
    const v2 = h.doc();
    // A failing change changes nothing.
    let threw = '';
    try {
      h.change((d) => { d.title = 'never'; d.todos[0].done = undefined; });
    } catch (e) { threw = e.message; }
    const v3 = h.doc();
    h.change((d) => { updateText(d, ['title'], 'A Porto trip'); d.todos.splice(0, 1); d.todos[0].text = 'adapter'; delete d.meta.created; });
    const v4 = h.doc();
    stop();
    const history = h.history();
    return {
      missing,
      v1: JSON.parse(JSON.stringify(v1)), v2: JSON.parse(JSON.stringify(v2)), v4: JSON.parse(JSON.stringify(v4)),
      frozen: Object.isFrozen(v2) && Object.isFrozen(v2.todos) && Object.isFrozen(v2.todos[0]),
      sameUntouched: v2.meta.created === v1.meta.created && v4.todos.at(-1) === v2.todos.at(-1),
      firstUnchanged: first.done === false,
      createdIsDate: v1.meta.created instanceof Date,
      counter: v2.votes instanceof Counter && v2.votes.value,
      sameWhenNothingChanged: v3 === v2 && h.doc() === v4,
      threw,
      changes,
      history: history.map((c) => ({ message: c.message, recent: Math.abs(Date.now() - c.time) < 600000, mine: c.author === repo.memberId })),
      past: h.view([history[0].hash]).title,
      heads: h.heads().length,
    };
  });
  assert.deepEqual(out.missing, [], 'what index.d.ts declares, index.js exports');
  assert.deepEqual(out.v1, { title: 'Lisbon trip', todos: [{ text: 'book flights', done: false }, { text: 'pack', done: false }], votes: 1, meta: { created: '2023-11-14T22:13:20.000Z', tags: ['travel'] } });
  // After unshift, push and insertAt: passport, adapter, flights, pack, plants; deleteAt(4) removed plants.
  assert.deepEqual(out.v2.todos.map((t) => t.text), ['renew passport', 'buy adapter', 'book flights', 'pack']);
  assert.equal(out.v2.todos[2].done, true, 'the edit followed the item when its index moved');
  assert.equal(out.v2.title, 'A Lisbon trip');
  assert.deepEqual(out.v2.meta.tags, ['travel', '2026']);
  assert.equal(out.counter, 3);
  assert.match(out.threw, /undefined/);
  assert.deepEqual(out.v4, { title: 'A Porto trip', todos: [{ text: 'adapter', done: false }, { text: 'book flights', done: true }, { text: 'pack', done: false }], votes: 3, meta: { tags: ['travel', '2026'] } });
  assert.ok(out.frozen, 'snapshots are frozen');
  assert.ok(out.sameUntouched, 'what a change did not touch is the same object in the next snapshot');
  assert.ok(out.firstUnchanged, 'an old snapshot does not change');
  assert.ok(out.createdIsDate);
  assert.ok(out.sameWhenNothingChanged, 'doc() returns the same object until the document changes');
  assert.deepEqual(out.changes.map((c) => c.title), ['Lisbon trip', 'A Lisbon trip', 'A Porto trip'], 'one event per change, not for the failed one');
  assert.deepEqual(out.history.map((c) => c.message), ['start', null, null]);
  assert.ok(out.history.every((c) => c.recent), 'changes carry the time they were made');
  assert.ok(out.history.every((c) => c.mine), 'and name their author');
  assert.equal(out.past, 'Lisbon trip');
  assert.equal(out.heads, 1);
  await context.close();
});

test('a remote change reaches doc() and on(change) through the relay', async () => {
  const alice = await page('alice');
  const bob = await page('bob');
  const open = (p) => p.evaluate(async (ws) => {
    window.repo = await window.synkro.openRepo({ storage: 'memory' });
    [window.relayId] = await window.repo.connect([ws]);
  }, relay.ws);
  await open(alice.page);
  await open(bob.page);
  const token = await alice.page.evaluate(async () => {
    window.h = await window.repo.create();
    window.h.change((d) => { d.items = [{ n: 1 }, { n: 2 }]; d.text = 'hi'; });
    await window.h.whenDurableOn(window.relayId, 20000);
    return window.h.share('write');
  });
  await bob.page.evaluate(async (token) => {
    window.h = await window.repo.join(token);
    window.events = [];
    window.h.on('change', ({ doc, patches }) => window.events.push({ doc, patches }));
  }, token);
  await until('bob has the document', () => bob.page.evaluate(() => { try { return window.h.doc().items?.length === 2; } catch { return false; } }));
  await bob.page.evaluate(() => { window.before = window.h.doc(); });
  await alice.page.evaluate(() => window.h.change((d) => { d.items[1].n = 20; window.synkro.splice(d, ['text'], 2, 0, ' there'); }));
  await until('bob sees the edit', () => bob.page.evaluate(() => window.h.doc().items[1].n === 20));
  const seen = await bob.page.evaluate(() => ({
    doc: JSON.parse(JSON.stringify(window.h.doc())),
    shared: window.h.doc().items[0] === window.before.items[0],
    arrived: window.events.some((e) => e.doc.items?.[1]?.n === 2),
    event: window.events.some((e) => e.doc.items?.[1]?.n === 20 && e.patches.some((p) => p.action === 'put' && p.path.join('/') === 'items/1/n')),
  }));
  assert.deepEqual(seen.doc, { items: [{ n: 1 }, { n: 20 }], text: 'hi there' });
  assert.ok(seen.shared, 'the untouched item is the same object');
  assert.ok(seen.arrived, 'a listener registered before the document arrived heard it arrive');
  assert.ok(seen.event, 'on(change) told bob with the patch');
  await alice.context.close();
  await bob.context.close();
});

test('documents go in from @automerge/automerge and come out to it, history included', async () => {
  // In Node, with the real package: text, a list, a counter, and two
  // actors editing concurrently, merged.
  let a = Automerge.from({ title: 'Notes', items: ['one'], votes: new Automerge.Counter(0), body: '' });
  let b = Automerge.clone(a);
  a = Automerge.change(a, { message: 'from a' }, (d) => { d.items.push('two'); d.votes.increment(2); Automerge.splice(d, ['body'], 0, 0, 'hello'); });
  b = Automerge.change(b, { message: 'from b' }, (d) => { d.items.unshift('zero'); d.votes.increment(5); d.title = 'Shared notes'; });
  a = Automerge.merge(a, b);
  const saved = Automerge.save(a);

  const { context, page: p } = await page('interop');
  const out = await p.evaluate(async (bytes) => {
    const repo = await window.synkro.openRepo({ storage: 'memory' });
    const h = await repo.import(new Uint8Array(bytes));
    const imported = JSON.parse(JSON.stringify(h.doc()));
    const messages = h.history().map((c) => c.message);
    const authors = h.history().map((c) => c.author);
    const heads = h.heads();
    let refused = '';
    try { await repo.import(new Uint8Array([1, 2, 3])); } catch (e) { refused = `${e.name}: ${e.message}`; }
    h.change((d) => { d.items.push('three'); d.votes.increment(); window.synkro.splice(d, ['body'], 5, 0, ' world'); }, { message: 'in synkro' });
    const after = h.history().filter((c) => c.message === 'in synkro').map((c) => c.author);
    return { imported, messages, authors, after, me: repo.memberId, heads, refused, exported: [...h.export()], docs: repo.list().length };
  }, [...saved]);

  assert.deepEqual(out.imported, { title: 'Shared notes', items: ['zero', 'one', 'two'], votes: 7, body: 'hello' });
  assert.deepEqual(out.heads.sort(), Automerge.getHeads(a).sort(), 'the same heads: the same history');
  assert.ok(out.messages.includes('from a') && out.messages.includes('from b'));
  assert.ok(out.authors.every((a) => a === null), 'plain Automerge changes name no member');
  assert.deepEqual(out.after, [out.me], 'a change made in synkro names its member');
  assert.match(out.refused, /InvalidArgumentError: .*Automerge/);
  assert.equal(out.docs, 1, 'the refused bytes made no document');

  const back = Automerge.load(new Uint8Array(out.exported));
  const { votes, ...rest } = Automerge.toJS(back);
  assert.deepEqual(rest, { title: 'Shared notes', items: ['zero', 'one', 'two', 'three'], body: 'hello world' });
  assert.ok(votes instanceof Automerge.Counter, 'a counter stays a counter');
  assert.equal(votes.value, 8, 'increments from both sides and from synkro add up');
  const history = Automerge.getHistory(back).map((s) => s.change.message);
  assert.ok(history.includes('from a') && history.includes('from b') && history.includes('in synkro'));
  // It merges with the original: the same document, not a copy.
  const merged = Automerge.merge(Automerge.clone(a), back);
  assert.deepEqual(Automerge.getHeads(merged).sort(), Automerge.getHeads(back).sort());
  await context.close();
});
