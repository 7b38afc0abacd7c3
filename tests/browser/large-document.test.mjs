// Large documents in the page: 260,000 keystrokes typed in one synchronous
// loop survive a reload and reach another browser through the relay; a
// paste too large for one change is refused with a typed error before
// anything changes, and nothing else is lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relay, useRelayAndChromium, openTestPage as open, until } from './harness.mjs';

useRelayAndChromium();

test('260,000 keystrokes typed in one loop survive a reload and reach another browser', async () => {
  const alice = await open('alice');
  const typed = await alice.page.evaluate(async () => {
    const repo = await window.synkro.openRepo({ name: 'burst' });
    const doc = await repo.create();
    doc.setText('paper', '');
    // Typing at a cursor that mostly moves locally, with backspaces and
    // now and then a jump, like the automerge-perf editing trace.
    let seed = 260;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    let len = 0;
    let cursor = 0;
    const started = performance.now();
    for (let i = 0; i < 260000; i++) {
      const roll = next();
      if (roll < 0.015 && len > 0) cursor = Math.floor(next() * (len + 1));
      if (roll < 0.7 || cursor === 0) {
        doc.splice('paper', cursor, 0, String.fromCharCode(97 + Math.floor(next() * 26)));
        cursor++;
        len++;
      } else {
        doc.splice('paper', cursor - 1, 1, '');
        cursor--;
        len--;
      }
    }
    const typedMs = performance.now() - started;
    await doc.flush();
    return { id: doc.id, text: doc.get('paper'), typedMs, storedBytes: doc.info().storedBytes };
  });
  console.log(`typed 260,000 keystrokes in ${Math.round(typed.typedMs)} ms; ${typed.storedBytes} bytes stored`);
  assert.ok(typed.text.length > 100000, `the paper has ${typed.text.length} characters`);

  await alice.page.reload();
  await alice.page.waitForFunction(() => window.ready);
  const reloaded = await alice.page.evaluate(async (id) => {
    window.repo = await window.synkro.openRepo({ name: 'burst' });
    window.doc = await window.repo.find(id);
    return { text: window.doc.get('paper'), problems: window.repo.loadProblems() };
  }, typed.id);
  assert.deepEqual(reloaded.problems, []);
  assert.equal(reloaded.text, typed.text, 'every keystroke is back after the reload');

  const token = await alice.page.evaluate(async (ws) => {
    [window.relayId] = await window.repo.connect([ws]);
    const token = await window.doc.share('read');
    await window.doc.whenDurableOn(window.relayId, 60000);
    return token;
  }, relay.ws);
  await alice.context.close(); // Bob gets everything from the relay

  const bob = await open('bob');
  await bob.page.evaluate(
    async ({ ws, token }) => {
      window.repo = await window.synkro.openRepo({ name: 'bob' });
      await window.repo.connect([ws]);
      window.doc = await window.repo.join(token);
    },
    { ws: relay.ws, token },
  );
  const arrived = () =>
    bob.page.evaluate(() => {
      try {
        return window.doc.get('paper');
      } catch {
        return undefined; // not arrived yet
      }
    });
  await until('the paper to reach bob', async () => (await arrived()) === typed.text, 60000);
  await bob.context.close();
});

test('a paste too large for one change is refused up front and nothing is lost', async () => {
  const { context, page } = await open('paste');
  const outcome = await page.evaluate(async () => {
    const repo = await window.synkro.openRepo({ name: 'paste' });
    const doc = await repo.create();
    doc.setText('notes', 'kept');
    let error;
    try {
      doc.splice('notes', 4, 0, 'x'.repeat(20 * 1000 * 1000));
    } catch (e) {
      error = { name: e.name, code: e.code, message: e.message };
    }
    // A paste within the limit goes through.
    doc.splice('notes', 4, 0, ' and a paste of 2 MB: ' + 'y'.repeat(2 * 1000 * 1000));
    await doc.flush();
    return { id: doc.id, error, length: doc.get('notes').length };
  });
  assert.equal(outcome.error?.name, 'InvalidArgumentError', JSON.stringify(outcome.error));
  assert.match(outcome.error.message, /over the limit/);
  assert.equal(outcome.length, 4 + 22 + 2000000);

  await page.reload();
  await page.waitForFunction(() => window.ready);
  const length = await page.evaluate(async (id) => {
    const repo = await window.synkro.openRepo({ name: 'paste' });
    return (await repo.find(id)).get('notes').length;
  }, outcome.id);
  assert.equal(length, outcome.length);
  await context.close();
});
