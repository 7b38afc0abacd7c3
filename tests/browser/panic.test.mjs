// The browser's panic fence: wasm32 aborts on panic, so a panic inside a
// dependency kills the module's instance. The call that hit it throws
// PanicError; the package starts a fresh instance, reopens the repo from
// IndexedDB (taking over the Web Lock the dead instance held), reconnects
// it and gives back its listeners; the same objects go on working and
// syncing, and nothing saved is lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relay, browser, useRelayAndChromium, until } from './harness.mjs';

useRelayAndChromium();

async function openPage() {
  const page = await (await browser.newContext()).newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${relay.http}/index.html`);
  await page.waitForFunction(() => window.ready);
  await page.evaluate(() => window.ready);
  return { page, errors };
}

test('a panic in the module reloads the repo from storage; the page keeps editing and syncing', async () => {
  const alice = await openPage();
  const bob = await openPage();

  const { token, id } = await alice.page.evaluate(async (ws) => {
    const repo = await window.synkro.openRepo({ name: 'panic-test', relays: [ws] });
    const [relayId] = await repo.connect([ws]);
    const doc = await repo.create();
    window.repo = repo;
    window.doc = doc;
    window.relayId = relayId;
    window.events = [];
    window.changes = 0;
    repo.onEvent((e) => window.events.push(e));
    doc.onChange(() => { window.changes++; });
    doc.set('title', 'before the panic');
    await doc.whenDurableOn(relayId, 20000);
    return { token: await doc.share('write'), id: doc.id };
  }, relay.ws);

  await bob.page.evaluate(async ({ ws, token }) => {
    const repo = await window.synkro.openRepo({ storage: 'memory', relays: [ws] });
    window.doc = await repo.join(token);
    window.relayId = (await repo.connect([ws]))[0];
  }, { ws: relay.ws, token });
  await until('bob to get the document', () =>
    bob.page.evaluate(() => { try { return window.doc.get('title') === 'before the panic'; } catch { return false; } }),
  );

  // A panic inside a document change, in the call itself.
  const thrown = await alice.page.evaluate(() => {
    try {
      window.doc.__panicForTests('a bug in a dependency', false);
      return null;
    } catch (e) {
      return { name: e.name, code: e.code, message: e.message };
    }
  });
  assert.equal(thrown?.name, 'PanicError', `the call throws PanicError, got ${JSON.stringify(thrown)}`);
  assert.equal(thrown.code, 'panicked');
  assert.match(thrown.message, /a bug in a dependency/);
  await until('the repo to be reloaded', () =>
    alice.page.evaluate(() => window.events.some((e) => e.type === 'reloaded')),
  );

  // The same objects work: what was saved is there, new edits are saved and
  // reach bob through the relay, and bob's reach alice's old listener.
  const afterFirst = await alice.page.evaluate(async () => {
    const title = window.doc.get('title');
    window.doc.set('after', 'edited after the panic');
    await window.doc.whenDurableOn(window.relayId, 20000);
    return { title, list: window.repo.list(), closed: window.repo.closed };
  });
  assert.equal(afterFirst.title, 'before the panic');
  assert.deepEqual(afterFirst.list, [id]);
  assert.equal(afterFirst.closed, false);
  await until('bob to see the edit made after the panic', () =>
    bob.page.evaluate(() => window.doc.get('after') === 'edited after the panic'),
  );
  const changesBefore = await alice.page.evaluate(() => window.changes);
  await bob.page.evaluate(() => window.doc.set('reply', 'from bob'));
  await until("alice's listener to hear bob's edit", () =>
    alice.page.evaluate((n) => window.changes > n && window.doc.get('reply') === 'from bob', changesBefore),
  );

  // A panic in one of the repo's own tasks (no call to throw from): the
  // instance is replaced all the same.
  await alice.page.evaluate(() => window.doc.__panicForTests('a bug in a background task', true));
  await until('the second reload', () =>
    alice.page.evaluate(() => window.events.filter((e) => e.type === 'reloaded').length === 2),
  );
  await alice.page.evaluate(async () => {
    window.doc.set('count', 2);
    await window.doc.whenDurableOn(window.relayId, 20000);
  });
  await until('bob to see the edit made after the second panic', () =>
    bob.page.evaluate(() => window.doc.get('count') === 2),
  );

  // And everything is in IndexedDB: a reload (no relay) finds it all.
  await alice.page.reload();
  await alice.page.waitForFunction(() => window.ready);
  const reloaded = await alice.page.evaluate(async (id) => {
    const repo = await window.synkro.openRepo({ name: 'panic-test' });
    return (await repo.find(id)).value();
  }, id);
  assert.deepEqual(reloaded, {
    title: 'before the panic',
    after: 'edited after the panic',
    reply: 'from bob',
    count: 2,
  });
  // Uncaught errors are only traps: the background task's, and callbacks
  // (timers, sockets) still reaching a dead instance, which refuses them.
  console.log(`uncaught in alice's page: ${JSON.stringify(alice.errors)}`);
  assert.ok(alice.errors.every((m) => /unreachable/.test(m)), `page errors: ${alice.errors.join('; ')}`);
  assert.deepEqual(bob.errors, []);
});
