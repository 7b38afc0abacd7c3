// Two browsers meet through a real synkro-relay (a relay circuit), then
// connect directly over WebRTC (browser-to-browser, signaled over the
// circuit) and sync there; the relay's circuit closes. With no direct path
// they stay on the circuit; when the direct connection is closed they go
// back to it. Edit latency direct and relayed is printed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relay, browser, useRelayAndChromium, editLatencies, webrtcContext, until } from './harness.mjs';

useRelayAndChromium();

/**
 * A user in their own browser context. Every RTCPeerConnection the page
 * makes is remembered (`window.pcs`), so a test can close one as a network
 * change or the page itself would.
 */
async function user(name, connectOptions) {
  const context = await webrtcContext(browser);
  await context.addInitScript(() => {
    const Original = window.RTCPeerConnection;
    window.pcs = [];
    window.RTCPeerConnection = class extends Original {
      constructor(...args) {
        super(...args);
        window.pcs.push(this);
      }
    };
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`${name} page error:`, e));
  if (process.env.SYNKRO_CONSOLE) page.on('console', (m) => console.log(`${name}: ${m.text()}`));
  await page.goto(`${relay.http}/index.html`);
  await page.evaluate(() => window.ready);
  await page.evaluate(async ({ ws, name, connectOptions }) => {
    window.repo = await window.synkro.openRepo({ name, storage: 'memory' });
    window.events = [];
    [window.relayId] = await window.repo.connect([ws], connectOptions);
    window.repo.onNetwork((e) => window.events.push({ ...e, at: Date.now() }));
  }, { ws: relay.ws, name, connectOptions });
  const id = await page.evaluate(() => window.repo.memberId);
  return { name, context, page, id };
}

/** Alice creates a document, Bob joins it; both hold it open. */
async function share(alice, bob) {
  const token = await alice.page.evaluate(async () => {
    window.doc = await window.repo.create();
    window.doc.set('items', []);
    await window.doc.whenDurableOn(window.relayId, 20000);
    return window.doc.share('write');
  });
  await bob.page.evaluate(async (token) => {
    window.doc = await window.repo.join(token);
  }, token);
}

const connection = (u, other) => u.page.evaluate((id) => window.repo.connection(id), other.id);

const median = (sorted) => sorted[Math.floor(sorted.length / 2)];

/** The relay's libp2p relay-server events: circuits accepted and closed. */
async function circuits() {
  const text = await (await fetch(`${relay.http}/metrics`)).text();
  const count = (event) => {
    const line = text.split('\n').find((l) => l.startsWith('libp2p_relay_events_total') && l.includes(`event="${event}"`));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  return { accepted: count('CircuitReqAccepted'), closed: count('CircuitClosed') };
}

const relayedLatency = [];

test('two browsers upgrade to a direct WebRTC connection and keep syncing; the circuit closes', async () => {
  const stun = relay.stun ? [`stun:${relay.stun}`] : [];
  const alice = await user('alice', { iceServers: stun });
  const bob = await user('bob', { iceServers: stun });
  await share(alice, bob);

  // Nobody dials anybody: the browsers meet through the relay, then the
  // circuit's dialer offers WebRTC over it.
  await until('a direct connection on both sides', async () =>
    (await connection(alice, bob)) === 'direct' && (await connection(bob, alice)) === 'direct', 30000);
  for (const [u, other] of [[alice, bob], [bob, alice]]) {
    const events = await u.page.evaluate(() => window.events);
    assert.ok(
      events.some((e) => e.type === 'session-opened' && e.peer === other.id && e.relayed),
      `${u.name} met ${other.name} through the relay first: ${JSON.stringify(events)}`,
    );
  }
  // The circuit stays a moment, then closes; the session moves over.
  await until('the sessions to move to the direct connection', async () => {
    for (const [u, other] of [[alice, bob], [bob, alice]]) {
      const moved = await u.page.evaluate(
        (id) => window.events.some((e) => e.type === 'session-opened' && e.peer === id && !e.relayed),
        other.id,
      );
      if (!moved) return false;
    }
    return true;
  });
  await until('the circuit to close', async () => {
    const c = await circuits();
    return c.accepted >= 1 && c.closed === c.accepted;
  });
  const before = await circuits();
  const upgrade = await alice.page.evaluate((id) => {
    const opened = window.events.find((e) => e.type === 'session-opened' && e.peer === id && e.relayed);
    const moved = window.events.find((e) => e.type === 'session-opened' && e.peer === id && !e.relayed);
    return moved.at - opened.at;
  }, bob.id);
  console.log(`session over the circuit → session over direct WebRTC: ${upgrade} ms (includes the circuit's 1 s grace)`);

  const direct = await editLatencies(alice, bob, 20, 0);
  console.log(`direct WebRTC: edit → other browser p50 ${median(direct)} ms, max ${direct.at(-1)} ms`);

  // Document traffic no longer goes through a relay circuit: none was opened.
  const afterEdits = await circuits();
  assert.deepEqual(afterEdits, before, 'no circuit opened while syncing directly');
  assert.equal(await connection(alice, bob), 'direct');
  const state = await alice.page.evaluate(() => window.pcs.map((pc) => pc.connectionState));
  assert.ok(state.includes('connected'), `alice's peer connections: ${state}`);

  // Close Alice's peer connection (as a network change would) while both
  // keep editing: they fall back to the circuit and lose nothing.
  await alice.page.evaluate(() => window.pcs.forEach((pc) => pc.close()));
  for (let i = 0; i < 10; i++) {
    await alice.page.evaluate((i) => window.doc.insert('items', 0, `alice ${i}`), i);
    await bob.page.evaluate((i) => window.doc.insert('items', 0, `bob ${i}`), i);
    await new Promise((r) => setTimeout(r, 50));
  }
  await until('both back on the relay circuit', async () =>
    (await connection(alice, bob)) === 'relayed' && (await connection(bob, alice)) === 'relayed', 30000);
  await until('every edit on both sides', async () => {
    const [a, b] = await Promise.all([alice, bob].map((u) => u.page.evaluate(() => window.doc.get('items'))));
    return a?.length === 20 && JSON.stringify(a) === JSON.stringify(b);
  }, 30000);
  const paths = await alice.page.evaluate(() => window.events.filter((e) => e.type === 'path').map((e) => e.relayed));
  assert.ok(paths.includes(false), `alice heard the upgrade: ${paths}`);
  const relayed = await editLatencies(alice, bob, 10, 100);
  relayedLatency.push(...relayed);
  await alice.context.close();
  await bob.context.close();
});

test('with no direct path the browsers stay on the relay circuit and sync', async () => {
  // TURN-only ICE with no TURN server: no candidate, no direct path.
  const options = { icePolicy: 'relay' };
  const carol = await user('carol', options);
  const dave = await user('dave', options);
  await share(carol, dave);
  await until('a session through the relay', async () => (await connection(carol, dave)) === 'relayed');
  // The attempt runs in the background and gives up after 10 s; the app
  // sees `relayed` all along and edits keep flowing.
  const started = Date.now();
  const states = new Set();
  let n = 200;
  while (Date.now() - started < 12000) {
    states.add(await connection(carol, dave));
    states.add(await connection(dave, carol));
    const lat = await editLatencies(carol, dave, 2, n);
    n += 2;
    relayedLatency.push(...lat);
  }
  assert.deepEqual([...states], ['relayed']);
  const opened = await carol.page.evaluate(() => window.pcs.length + 0);
  assert.ok(opened >= 1, 'a direct connection was attempted');
  relayedLatency.sort((a, b) => a - b);
  console.log(
    `relayed (circuit): edit → other browser p50 ${median(relayedLatency)} ms, max ${relayedLatency.at(-1)} ms (${relayedLatency.length} edits)`,
  );
  await carol.context.close();
  await dave.context.close();
});
