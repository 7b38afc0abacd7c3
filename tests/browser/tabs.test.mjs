// Every tab of an origin uses the same repo at once: the first holds it
// (writes IndexedDB, holds the connections), the others are guests that
// see every change live and hand it their edits. When the tab holding it
// closes, another holds it within a second and nothing acknowledged is lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { browser, relay, useRelayAndChromium, loadTestPage, until } from './harness.mjs';

useRelayAndChromium();

/** `n` tabs of one browser profile, each with the repo `name` open as `window.repo`. */
async function tabs(context, n, name) {
  const pages = [];
  for (let i = 0; i < n; i++) {
    const page = await context.newPage();
    page.on('pageerror', (e) => console.error(`tab ${i} page error:`, e));
    await loadTestPage(page);
    await page.evaluate(async (name) => {
      window.repo = await window.synkro.openRepo({ name });
      window.seen = [];
    }, name);
    pages.push(page);
  }
  return pages;
}

/** In `page`: open `id` as `window.doc` and note every version it sees. */
function follow(page, id) {
  return page.evaluate(async (id) => {
    window.doc = await window.repo.find(id);
    window.doc.on('change', ({ doc }) => window.seen.push(doc));
  }, id);
}

/** A document created in `pages[0]` with the list `key`, followed in every page; its id. */
async function shared(pages, key) {
  const id = await pages[0].evaluate(async (key) => {
    const doc = await window.repo.create();
    doc.change((d) => { d[key] = []; });
    await doc.flush();
    return doc.id;
  }, key);
  for (const page of pages) await follow(page, id);
  return id;
}

const value = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.doc.doc())));

test('tabs share one repo: every edit shows in every tab, live, without a relay', async () => {
  const context = await browser.newContext();
  const [host, a, b] = await tabs(context, 3, 'shared');
  const roles = await Promise.all([host, a, b].map((p) => p.evaluate(() => window.repo.isGuest)));
  assert.deepEqual(roles, [false, true, true], 'the first tab holds the repo, the others are guests');

  // A guest creates the document (the host does it for it) and starts it.
  const id = await a.evaluate(async () => {
    const doc = await window.repo.create();
    doc.change((d) => { d.title = 'Groceries'; d.items = []; });
    await doc.flush();
    return doc.id;
  });
  for (const page of [host, a, b]) await follow(page, id);

  // Every tab adds an item at once; each sees all three.
  await Promise.all([host, a, b].map((page, i) => page.evaluate((i) => {
    window.doc.change((d) => { d.items.push(`item from tab ${i}`); });
  }, i)));
  for (const page of [host, a, b]) {
    await until('every tab sees every item', async () => (await value(page)).items?.length === 3, 10000);
  }
  const [h, x, y] = await Promise.all([host, a, b].map(value));
  assert.deepEqual(x, h);
  assert.deepEqual(y, h);
  assert.equal(h.title, 'Groceries');
  assert.deepEqual([...h.items].sort(), ['item from tab 0', 'item from tab 1', 'item from tab 2']);

  // A keystroke in a guest reaches another guest fast (no relay: host in between).
  const latency = await b.evaluate(async () => {
    const seen = window.seen.length;
    const started = performance.now();
    window.doc.change((d) => { d.title = 'Groceries!'; });
    await window.doc.flush();
    return { flushed: performance.now() - started, seen };
  });
  await until('the other guest sees it', async () => (await value(a)).title === 'Groceries!', 5000);
  console.log(`guest flush acknowledged by the host in ${latency.flushed.toFixed(1)} ms`);

  // What a guest may ask of the host: an invitation.
  const token = await b.evaluate(() => window.doc.share('read'));
  assert.match(token, /^[A-Za-z0-9]/);
  // And the host's errors come back as the same classes.
  const refused = await b.evaluate(() => window.repo.restore(new Uint8Array([1, 2, 3]), 'wrong').then(() => 'restored', (e) => e.name));
  assert.equal(refused, 'InvalidArgumentError');

  // Everything is in IndexedDB: a fresh tab after all others close reads it.
  await Promise.all([host, a, b].map((p) => p.close()));
  const [fresh] = await tabs(context, 1, 'shared');
  await follow(fresh, id);
  assert.equal((await value(fresh)).title, 'Groceries!');
  assert.equal(await fresh.evaluate(() => window.repo.isGuest), false);
  await context.close();
});

test('when the tab holding the repo closes, a guest holds it within a second and loses nothing', async () => {
  const context = await browser.newContext();
  const [host, a, b] = await tabs(context, 3, 'take-over');
  const id = await shared([host, a, b], 'log');
  // Guests connect the relay through the host, and read its sync status.
  const relayId = await a.evaluate(async (ws) => (await window.repo.connect([ws]))[0], relay.ws);
  await until('a guest reads the host\'s sync status', () => a.evaluate((r) => window.repo.syncStatus(r).connected, relayId), 10000);

  // Guest a keeps writing while the host tab goes away.
  const writing = a.evaluate(async () => {
    const acknowledged = [];
    for (let i = 0; i < 40; i++) {
      window.doc.change((d) => { d.log.push(i); });
      await window.doc.flush().then(() => acknowledged.push(i), () => {});
      await new Promise((r) => setTimeout(r, 10));
    }
    return acknowledged;
  });
  await new Promise((r) => setTimeout(r, 100));
  const closedAt = Date.now();
  await host.close();
  const newHost = await until('a guest holds the repo', async () => {
    for (const page of [a, b]) {
      if (await page.evaluate(() => !window.repo.isGuest)) return page;
    }
    return null;
  }, 5000);
  const tookMs = Date.now() - closedAt;
  console.log(`a guest held the repo ${tookMs} ms after the host tab closed`);
  assert.ok(tookMs < 1000 + 400, `took ${tookMs} ms (polled every 100 ms)`);
  const acknowledged = await writing;
  assert.equal(acknowledged.length, 40, 'every edit was acknowledged in the end');

  // Both remaining tabs see all 40 entries, and the relay connection moved
  // to the new host.
  for (const page of [a, b]) {
    await until('every entry shows', async () => (await value(page)).log?.length === 40, 10000);
  }
  assert.deepEqual((await value(b)).log, [...Array(40).keys()]);
  await until('the new host is connected to the relay', () => newHost.evaluate((r) => window.repo.syncStatus(r).connected, relayId), 15000);

  // And everything acknowledged is in IndexedDB.
  await Promise.all([a, b].map((p) => p.close()));
  const [fresh] = await tabs(context, 1, 'take-over');
  await follow(fresh, id);
  assert.deepEqual((await value(fresh)).log, [...Array(40).keys()]);
  await context.close();
});

test('presence goes out from a guest tab and reaches it, through the tab holding the connections', async () => {
  const mine = await browser.newContext();
  const [host, guest] = await tabs(mine, 2, 'presence');
  const token = await host.evaluate(async (ws) => {
    await window.repo.connect([ws]);
    const doc = await window.repo.create();
    doc.change((d) => { d.title = 'Standup'; });
    await doc.flush();
    window.doc = doc;
    return doc.share('write');
  }, relay.ws);
  const id = await host.evaluate(() => window.doc.id);
  await guest.evaluate(async (id) => {
    window.doc = await window.repo.find(id);
    window.heard = [];
    window.doc.onBroadcast(({ value }) => window.heard.push(value));
  }, id);

  const theirs = await browser.newContext();
  const [other] = await tabs(theirs, 1, 'presence');
  await other.evaluate(async ({ ws, token }) => {
    await window.repo.connect([ws]);
    window.doc = await window.repo.join(token);
    window.heard = [];
    window.doc.onBroadcast(({ value }) => window.heard.push(value));
  }, { ws: relay.ws, token });
  await until('the other person has the document', () => other.evaluate(() => { try { return window.doc.doc().title === 'Standup'; } catch { return false; } }), 30000);

  // Presence is sent while the others are online: keep sending until heard.
  await until('the other person hears the guest tab', async () => {
    await guest.evaluate(() => window.doc.broadcast({ cursor: 'guest' }));
    return other.evaluate(() => window.heard.some((v) => v.cursor === 'guest'));
  }, 30000);
  await until('the guest tab hears the other person', async () => {
    await other.evaluate(() => window.doc.broadcast({ cursor: 'other' }));
    return guest.evaluate(() => window.heard.some((v) => v.cursor === 'other'));
  }, 30000);
  await mine.close();
  await theirs.close();
});

test('a panic in a guest tab reloads it as a guest: the tab holding the repo keeps it', async () => {
  const context = await browser.newContext();
  const [host, guest] = await tabs(context, 2, 'guest-panic');
  await shared([host, guest], 'notes');
  const thrown = await guest.evaluate(() => {
    try {
      window.doc.__panicForTests('a bug in a dependency', false);
      return null;
    } catch (e) {
      return e.name;
    }
  });
  assert.equal(thrown, 'PanicError');
  // The guest's new instance reopens the repo as a guest (it must not take
  // the lock from the tab holding it) and goes on editing through it.
  await until('the guest reloaded', () => guest.evaluate(async () => {
    try {
      window.doc.change((d) => { d.notes.push('after the panic'); });
      await window.doc.flush();
      return true;
    } catch {
      return false;
    }
  }), 10000);
  assert.equal(await guest.evaluate(() => window.repo.isGuest), true);
  assert.equal(await host.evaluate(() => window.repo.isGuest), false);
  await until('the host sees the edit', async () => (await value(host)).notes?.includes('after the panic'), 10000);
  await context.close();
});
