// Two users in two browser contexts (separate storage) share a document
// through a real synkro-relay: each sees the other's edits (latency
// printed); one goes offline, both edit, it comes back, both converge.
// And the package runs inside a Web Worker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relay, browser, useRelayAndChromium, openTestPage, editLatencies, until } from './harness.mjs';

useRelayAndChromium();

async function user(name) {
  const { context, page } = await openTestPage(name);
  await page.evaluate(async ({ ws, name }) => {
    window.repo = await window.synkro.openRepo({ name });
    window.sessions = [];
    [window.relayId] = await window.repo.connect([ws]);
    window.repo.onNetwork((e) => {
      if (e.type === 'session-opened') window.sessions.push(e);
    });
  }, { ws: relay.ws, name });
  return { context, page };
}

const read = (page, path) =>
  page.evaluate((path) => {
    try {
      return window.doc.get(path);
    } catch {
      return undefined; // not arrived yet
    }
  }, path);

test('two users collaborate through the relay, offline and back', async () => {
  const alice = await user('alice');
  const bob = await user('bob');

  const token = await alice.page.evaluate(async () => {
    window.doc = await window.repo.create();
    window.doc.set('title', 'Team notes');
    window.doc.set('items', []);
    window.doc.setText('text', 'hello');
    await window.doc.whenDurableOn(window.relayId, 20000);
    return window.doc.share('write');
  });
  await bob.page.evaluate(async (token) => {
    window.doc = await window.repo.join(token);
  }, token);
  await until('bob to receive the document', async () => (await read(bob.page, 'title')) === 'Team notes');

  // Nobody dials anybody: the two browsers find each other through the
  // relay and open a sync session over a relay circuit.
  const bobId = await bob.page.evaluate(() => window.repo.memberId);
  const aliceId = await alice.page.evaluate(() => window.repo.memberId);
  const circuit = (page, other) =>
    page.evaluate((other) => window.sessions.some((e) => e.peer === other && e.relayed), other);
  await until('a circuit between the two browsers', async () => (await circuit(alice.page, bobId)) && (await circuit(bob.page, aliceId)));

  // Edit → sealed → relay → the other browser, one edit at a time.
  const latencies = await editLatencies(alice, bob, 20);
  console.log(
    `browser → relay → browser: p50 ${latencies[10]} ms, max ${latencies[19]} ms (includes the 50 ms flush window)`,
  );

  // Bob goes offline; both edit; he comes back; nothing is lost.
  // (An emulated offline context keeps open WebSockets, so the app also
  // stops syncing, as an offline toggle would.)
  await bob.context.setOffline(true);
  await bob.page.evaluate(() => window.repo.disconnect());
  await alice.page.evaluate(async () => {
    window.doc.insert('items', 0, 'from alice while bob was away');
    window.doc.splice('text', 5, 0, ' world');
    await window.doc.whenDurableOn(window.relayId, 20000);
  });
  await bob.page.evaluate(async () => {
    window.doc.insert('items', 0, 'from bob, offline');
    window.doc.splice('text', 0, 1, 'H');
    await window.doc.flush();
  });
  await bob.context.setOffline(false);
  await bob.page.evaluate((ws) => window.repo.connect([ws]), relay.ws);
  const expected = (v) =>
    v?.items?.length === 2 && v.text === 'Hello world' && v.items.includes('from bob, offline');
  await until('both to converge', async () => {
    const [a, b] = await Promise.all([alice.page, bob.page].map((p) => p.evaluate(() => window.doc.value())));
    return expected(a) && JSON.stringify(a) === JSON.stringify(b);
  }, 60000);
  await alice.context.close();
  await bob.context.close();
});

test('the package works inside a Web Worker', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${relay.http}/index.html`);
  const result = await page.evaluate(async (ws) => {
    const source = `
      import { openRepo } from '${location.origin}/pkg/index.js';
      onmessage = async ({ data: ws }) => {
        try {
          const repo = await openRepo({ name: 'in-a-worker' });
          const [relayId] = await repo.connect([ws]);
          const doc = await repo.create();
          doc.set('where', 'a worker');
          await doc.whenDurableOn(relayId, 20000);
          postMessage({ ok: doc.value(), relayId });
        } catch (e) {
          postMessage({ error: e.name + ': ' + e.message });
        }
      };`;
    const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
    const worker = new Worker(url, { type: 'module' });
    return new Promise((resolve) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => resolve({ error: e.message });
      worker.postMessage(ws);
    });
  }, relay.ws);
  assert.deepEqual(result.ok, { where: 'a worker' }, JSON.stringify(result));
  await context.close();
});
