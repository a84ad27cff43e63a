// Herald's admin page (served by the binary at / of its operations listener) in headless
// Chromium: it loads without console errors, its figures move while load runs, names that
// clients chose are shown as text, never as markup. A screenshot goes to test-artifacts/.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

import { connect } from '../dist/esm/index.js';
import { startHerald, uniqueName } from './support/processes.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const ARTIFACTS = new URL('../test-artifacts', import.meta.url).pathname;
const WAIT_MS = 20000;

let herald;
let browser;
const clients = [];

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}`);
  mkdirSync(ARTIFACTS, { recursive: true });
  herald = await startHerald({ http: true, args: ['--user', 'alice:alice-pw'] });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await Promise.all(clients.map(c => c.close()));
  await browser?.close();
  await herald?.stop();
});

async function client(options = {}) {
  const c = connect({ url: herald.url, ...options });
  clients.push(c);
  await c.whenConnected();
  return c;
}

test('the admin page shows live figures and keeps client-chosen names as text', async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 700 } });
  const errors = [];
  page.on('pageerror', error => errors.push(String(error)));
  page.on('console', message => message.type() === 'error' && errors.push(message.text()));
  await page.goto(`${herald.api}/`);
  await page.waitForFunction(() => document.getElementById('node').textContent !== '', null, {
    timeout: WAIT_MS,
  });

  // Two tabs of alice, and a publisher sending to a busy topic and to a hostile name.
  await client({ login: 'alice', passcode: 'alice-pw' });
  await client({ login: 'alice', passcode: 'alice-pw' });
  const publisher = await client();
  const hot = `/topic/${uniqueName('admin-hot')}`;
  const hostile = `/topic/<img src=x id=injected onerror=alert(1)>`;
  const load = (async () => {
    for (let round = 0; round < 40; round++) {
      await Promise.all([
        ...Array.from({ length: 25 }, () => publisher.publish(hot, 'x')),
        // Enough that the 1-in-16 sample lists it (missed with probability below 1e-5).
        ...Array.from({ length: 5 }, () => publisher.publish(hostile, 'y')),
      ]);
    }
  })();

  await page.waitForFunction(
    () => Number(document.getElementById('published-rate').textContent.replace(/,/g, '')) > 0,
    null,
    { timeout: WAIT_MS },
  );
  await load;
  await page.waitForFunction(
    name => document.getElementById('destinations').textContent.includes(name),
    hot,
    { timeout: WAIT_MS },
  );
  await page.waitForFunction(
    () => document.getElementById('users').textContent.includes('alice'),
    null,
    { timeout: WAIT_MS },
  );
  assert.match(await page.textContent('#users-online'), /^1 \(2 sessions\)$/);
  assert.equal(await page.textContent('#cluster'), 'single node');
  assert.ok(Number((await page.textContent('#connections')).replace(/,/g, '')) >= 3);
  // The hostile destination is listed as text: no element came out of it.
  await page.waitForFunction(
    name => document.getElementById('destinations').textContent.includes(name),
    hostile,
    { timeout: WAIT_MS },
  );
  assert.equal(await page.$('#injected'), null);
  await page.screenshot({ path: `${ARTIFACTS}/admin-page.png` });
  assert.deepEqual(errors, []);
  await page.close();
});
