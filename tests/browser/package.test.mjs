// The npm package `synkro` in headless Chromium: a page and a native CLI
// device sync one document through a real synkro-relay, both directions;
// bad arguments from JavaScript throw typed errors and never kill the module.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { relay, browser, useRelayAndChromium, cliDevice, webrtcContext, until } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));

useRelayAndChromium();

async function openPage({ webrtc = false } = {}) {
  const page = webrtc ? await (await webrtcContext(browser)).newPage() : await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${relay.http}/index.html`);
  await page.waitForFunction(() => window.ready);
  await page.evaluate(() => window.ready);
  return page;
}

test('a page and a native CLI device sync through the relay, both directions', async () => {
  const alice = cliDevice();
  const doc = alice.run('new', '--name', 'shared');
  alice.run('set', doc, 'title', '"from the CLI"');
  const token = alice.run('share', doc, '--role', 'write');
  alice.run('sync', '--relay', relay.tcp, '--once');

  const page = await openPage();
  const started = Date.now();
  const got = await page.evaluate(
    async ({ ws, token }) => {
      const repo = await window.synkro.openRepo({ storage: 'memory' });
      const [relayId] = await repo.connect([ws]);
      const doc = await repo.join(token);
      window.repo = repo;
      window.doc = doc;
      window.relayId = relayId;
      const title = () => {
        try {
          return doc.get('title');
        } catch (e) {
          if (e.name !== 'NotFoundError') throw e;
          return undefined; // joined; the content has not arrived yet
        }
      };
      for (let i = 0; i < 300 && title() === undefined; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      return title();
    },
    { ws: relay.ws, token },
  );
  assert.equal(got, 'from the CLI');
  console.log(`browser joined and received the document in ${Date.now() - started} ms`);

  await page.evaluate(async () => {
    window.doc.set('reply', { from: 'the browser', n: 1 });
    window.doc.setText('notes', 'typed in Chromium');
    await window.doc.whenDurableOn(window.relayId, 20000);
  });
  alice.run('sync', '--relay', relay.tcp, '--once');
  assert.equal(alice.run('get', doc, 'reply/from'), '"the browser"');
  assert.equal(alice.run('get', doc, 'notes'), '"typed in Chromium"');

  // And the CLI's next edit reaches the open page live.
  alice.run('set', doc, 'title', '"edited again"');
  alice.run('sync', '--relay', relay.tcp, '--once');
  await until('the page to see the new title', () =>
    page.evaluate(() => window.doc.get('title') === 'edited again'),
  );
  await page.close();
});

test('a page syncs with the relay over WebRTC-direct too', async () => {
  const page = await openPage({ webrtc: true });
  const started = Date.now();
  const result = await page.evaluate(async (webrtc) => {
    const repo = await window.synkro.openRepo({ storage: 'memory' });
    const [relayId] = await repo.connect([webrtc]);
    const doc = await repo.create();
    doc.set('over', 'webrtc-direct');
    await doc.whenDurableOn(relayId, 20000);
    return { token: await doc.share('read'), id: doc.id };
  }, relay.webrtc);
  console.log(`browser → relay over WebRTC-direct: connected and durable in ${Date.now() - started} ms`);
  const bob = cliDevice();
  bob.run('join', result.token);
  bob.run('sync', '--relay', relay.tcp, '--once');
  assert.equal(bob.run('get', result.id, 'over'), '"webrtc-direct"');
  await page.close();
});

test('documents whose handles are freed unload past the memory budget and come back', async () => {
  const page = await openPage();
  const out = await page.evaluate(async () => {
    const repo = await window.synkro.openRepo({ storage: 'memory', memoryBudget: 1 });
    const ids = [];
    for (let i = 0; i < 5; i++) {
      const doc = await repo.create();
      doc.set('n', i);
      await doc.flush();
      ids.push(doc.id);
      if (i === 0) window.kept = doc; // held: stays loaded
      else doc.free();
    }
    const wait = (ms) => new Promise((r) => setTimeout(r, ms));
    let after = repo.stats();
    for (let i = 0; i < 50 && after.loaded > 1; i++) {
      await wait(100);
      after = repo.stats();
    }
    const back = [];
    for (const id of ids) back.push((await repo.find(id)).get('n'));
    // Handles the app drops without freeing let their documents go once
    // collected; one with a listener is kept while it listens.
    (await repo.find(ids[1])).onChange(() => {});
    for (let i = 0; i < 50 && repo.stats().loaded > 2; i++) {
      window.gc();
      await wait(100);
    }
    const collected = repo.stats();
    let badBudget = null;
    try {
      await window.synkro.openRepo({ storage: 'memory', memoryBudget: -1 });
    } catch (e) {
      badBudget = e.name;
    }
    return { after, back, collected, kept: window.kept.get('n'), badBudget };
  });
  assert.equal(out.after.documents, 5);
  assert.equal(out.after.loaded, 1, `only the held document stays loaded: ${JSON.stringify(out.after)}`);
  assert.deepEqual(out.back, [0, 1, 2, 3, 4], 'unloaded documents come back whole');
  assert.equal(out.collected.loaded, 2, `held and listened-to documents stay: ${JSON.stringify(out.collected)}`);
  assert.equal(out.kept, 0);
  assert.equal(out.badBudget, 'InvalidArgumentError');
  await page.close();
});

test('bad arguments throw typed errors and the module keeps working', async () => {
  const page = await openPage();
  const results = await page.evaluate(async () => {
    const { openRepo, InvalidArgumentError, NotFoundError, SynkroError } = window.synkro;
    const repo = await openRepo({ storage: 'memory' });
    const doc = await repo.create();
    const caught = [];
    const attempt = async (name, f) => {
      try {
        await f();
        caught.push([name, 'no error']);
      } catch (e) {
        caught.push([name, e.name, e instanceof SynkroError, e.message]);
      }
    };
    await attempt('find', () => repo.find('not-an-id'));
    await attempt('join', () => repo.join('garbage'));
    await attempt('set undefined', () => doc.set('a', undefined));
    await attempt('bad path', () => doc.set('a//b', 1));
    await attempt('negative index', () => doc.insert('list', -1, 'x'));
    await attempt('splice not text', () => doc.splice('nothing', 0, 0, 'x'));
    await attempt('share role', () => doc.share('owner'));
    await attempt('connect', () => repo.connect(['not a multiaddr']));
    // Not strings where strings belong: the JS glue would copy them into
    // wasm memory blindly (found by the benchmark: it corrupted the heap).
    await attempt('join a number', () => repo.join(42));
    await attempt('find an object', () => repo.find({ id: 'x' }));
    await attempt('get null', () => doc.get(null));
    await attempt('setText a number', () => doc.setText('t', 5));
    await attempt('splice an array', () => doc.splice('t', 0, 0, ['x']));
    await attempt('share undefined', () => doc.share());
    await attempt('connect a string', () => repo.connect('/ip4/127.0.0.1/tcp/1/ws'));
    await attempt('connect numbers', () => repo.connect([1, 2]));
    await attempt('unknown doc', () => repo.find('4vJ9JU1bJJE96FWSJKvHsmmFADCg4gpZQff4P3bkLKi'));
    // Still alive: the instance did not abort.
    doc.set('ok', true);
    return { caught, ok: doc.get('ok'), errors: [InvalidArgumentError.name, NotFoundError.name] };
  });
  assert.equal(results.ok, true, 'the module still works after bad input');
  for (const [name, cls, isSynkro] of results.caught) {
    assert.notEqual(cls, 'no error', `${name} should have thrown`);
    assert.equal(isSynkro, true, `${name} threw ${cls}, not a SynkroError`);
  }
  const byName = Object.fromEntries(results.caught.map(([n, c]) => [n, c]));
  assert.equal(byName['set undefined'], 'InvalidArgumentError');
  assert.equal(byName['negative index'], 'InvalidArgumentError');
  assert.equal(byName['unknown doc'], 'NotFoundError');
  for (const name of ['join a number', 'find an object', 'get null', 'setText a number', 'splice an array', 'share undefined', 'connect a string', 'connect numbers']) {
    assert.equal(byName[name], 'InvalidArgumentError', name);
  }
  await page.close();
});

test('the TypeScript types check a typical program, and catch a wrong one', () => {
  // types/usage.ts imports 'synkro' as an app would: from node_modules.
  const types = join(here, 'types');
  const modules = join(types, 'node_modules');
  mkdirSync(modules, { recursive: true });
  rmSync(join(modules, 'synkro'), { force: true, recursive: true });
  symlinkSync(join(here, '..', '..', 'bindings', 'wasm', 'pkg'), join(modules, 'synkro'), 'dir');
  const tsc = join(here, 'node_modules', '.bin', 'tsc');
  const result = spawnSync(tsc, ['-p', join(types, 'tsconfig.json')], { encoding: 'utf8' });
  assert.equal(result.status, 0, `tsc found errors:\n${result.stdout}${result.stderr}`);
});
