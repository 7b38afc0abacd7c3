// Two relays over one NATS JetStream server: a page connected to one relay
// and a native CLI device syncing through the other edit the same document,
// both directions, live; the relays hear each other through NATS only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { startRelay, stageSite, launchChromium, cliDevice, tempDir, until } from './harness.mjs';

let nats;
let relays = [];
let browser;

/** nats-server with JetStream on a free loopback port; its client URL. */
async function startNats() {
  const child = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', '-1', '-sd', tempDir('nats')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.on('error', (e) => console.error('cannot start nats-server (scripts/setup.sh installs it):', e.message));
  const lines = [];
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nats-server not ready: ${lines.join('\n')}`)), 30000);
    child.once('exit', (code) => reject(new Error(`nats-server exited with ${code}: ${lines.join('\n')}`)));
    createInterface({ input: child.stderr }).on('line', (line) => {
      lines.push(line);
      const m = line.match(/Listening for client connections on (\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(`nats://${m[1]}`);
      }
    });
  });
  return {
    url,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', resolve);
      child.kill('SIGTERM');
    }),
  };
}

before(async () => {
  nats = await startNats();
  const site = stageSite();
  for (let i = 0; i < 2; i++) {
    relays.push(await startRelay({ webRoot: site, extra: ['--cluster', nats.url] }));
  }
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  for (const r of relays) await r.stop();
  await nats?.stop();
});

test('a page on one relay and a CLI device on another edit one document through the cluster', async () => {
  const [one, two] = relays;
  const alice = cliDevice();
  const doc = alice.run('new', '--name', 'across');
  alice.run('set', doc, 'title', '"from relay one"');
  const token = alice.run('share', doc, '--role', 'write');
  alice.run('sync', '--relay', one.tcp, '--once');

  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${two.http}/index.html`);
  await page.waitForFunction(() => window.ready);
  await page.evaluate(() => window.ready);
  const got = await page.evaluate(
    async ({ ws, token }) => {
      const repo = await window.synkro.openRepo({ storage: 'memory' });
      const [relayId] = await repo.connect([ws]);
      const doc = await repo.join(token);
      Object.assign(window, { repo, doc, relayId });
      const title = () => {
        try {
          return doc.get('title');
        } catch (e) {
          if (e.name !== 'NotFoundError') throw e;
          return undefined;
        }
      };
      for (let i = 0; i < 300 && title() === undefined; i++) await new Promise((r) => setTimeout(r, 100));
      return title();
    },
    { ws: two.ws, token },
  );
  assert.equal(got, 'from relay one', 'relay two served what relay one stored');

  // The page writes through relay two; durable there means stored in NATS.
  await page.evaluate(async () => {
    window.doc.set('reply', 'from relay two');
    await window.doc.whenDurableOn(window.relayId, 20000);
  });
  alice.run('sync', '--relay', one.tcp, '--once');
  assert.equal(alice.run('get', doc, 'reply'), '"from relay two"');

  // The CLI's next edit through relay one reaches the open page live.
  alice.run('set', doc, 'title', '"edited on relay one"');
  const sent = Date.now();
  alice.run('sync', '--relay', one.tcp, '--once');
  await until('the page on relay two to see the edit', () =>
    page.evaluate(() => window.doc.get('title') === 'edited on relay one'),
  );
  console.log(`CLI sync through relay one → page on relay two: ${Date.now() - sent} ms`);
  await page.close();
});
