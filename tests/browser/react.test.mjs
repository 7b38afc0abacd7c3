// `synkro/react` in a small React app built by Vite (react-app/), in
// headless Chromium: two people on one list through a real relay; each
// sees the other's additions and votes re-rendered, presence and the
// relay's sync status, and the joiner sees "Loading…" until the list
// arrives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { relay, browser, useRelayAndChromium, tempDir, until } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const dist = tempDir('react-app');
await build({ configFile: join(here, 'react-app', 'vite.config.js'), build: { outDir: dist } });
useRelayAndChromium({ webRoot: dist });

async function person(name, hash = '') {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${relay.http}/index.html?relay=${encodeURIComponent(relay.ws)}&name=${name}${hash}`);
  return { context, page, errors };
}

const text = (page, sel) => page.locator(sel).textContent();

test('a React app on synkro/react: two people, one list, live', async () => {
  const ann = await person('ann');
  await ann.page.locator('#title').waitFor();
  assert.equal(await text(ann.page, '#title'), 'Groceries');
  const token = await ann.page.evaluate(() => window.app.handle.share('write'));

  const ben = await person('ben', `#${encodeURIComponent(token)}`);
  await ben.page.locator('#title').waitFor({ timeout: 20000 });
  assert.deepEqual(await ben.page.locator('#items li').allTextContents(), ['milk']);

  await ben.page.click('#add');
  await ben.page.click('#vote');
  await until('ann sees ben\'s item and vote', async () =>
    (await ann.page.locator('#items li').count()) === 2 && (await text(ann.page, '#vote')) === 'Votes: 1');
  await ann.page.click('#vote');
  await ann.page.click('#add');
  await until('ben sees ann\'s', async () =>
    (await ben.page.locator('#items li').allTextContents()).join() === 'milk,item 2,item 3' && (await text(ben.page, '#vote')) === 'Votes: 2');

  await until('presence', async () => (await text(ann.page, '#others')) === 'ben' && (await text(ben.page, '#others')) === 'ann');
  await until('sync status', async () => (await text(ann.page, '#status')) === 'synced');
  assert.equal(await text(ben.page, '#handle'), 'ready');
  const renders = await ben.page.evaluate(() => window.app.renders());
  console.log(`ben's list rendered ${renders} times`);
  assert.deepEqual([...ann.errors, ...ben.errors], []);
  await ann.context.close();
  await ben.context.close();
});
