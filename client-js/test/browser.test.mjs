// End to end in headless Chromium (Debian's, driven by playwright-core): the chat demo served
// by herald from websocket.static_dir. Screenshots go to test-artifacts/.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

import { HeraldAdmin } from '../dist/esm/index.js';
import { startHerald, uniqueName } from './support/processes.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const PUBLIC = new URL('../examples/chat/public', import.meta.url).pathname;
const ARTIFACTS = new URL('../test-artifacts', import.meta.url).pathname;
const WAIT_MS = 15000;

let herald;
let browser;

before(async () => {
  assert.ok(
    existsSync(CHROMIUM),
    `no Chromium at ${CHROMIUM} (scripts/client-js-tests.sh installs it)`,
  );
  assert.ok(existsSync(`${PUBLIC}/app.js`), 'the demo is built (npm run build)');
  mkdirSync(ARTIFACTS, { recursive: true });
  const users = ['alice', 'bob', 'carol'].flatMap(name => ['--user', `${name}:${name}`]);
  herald = await startHerald({
    toml: `[websocket]\nstatic_dir = ${JSON.stringify(PUBLIC)}\n`,
    args: users,
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  await herald?.stop();
});

/** A fresh page (its own browser context: no shared storage) logged in to the demo. */
async function login(name) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 640 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', error => errors.push(error));
  page.errors = errors;
  await page.goto(`${herald.origin}/`);
  await page.fill('#login-name', name);
  await page.fill('#login-password', name);
  await page.click('#login-button');
  await page.waitForSelector(`#status[data-state="connected"]`, { timeout: WAIT_MS });
  assert.equal(await page.textContent('#status'), `connected as ${name}`);
  return page;
}

test('two pages logged in as the same user both show a message sent to that user', async () => {
  const tabs = [await login('alice'), await login('alice')];
  const admin = HeraldAdmin.overStomp({ url: herald.url, login: 'carol', passcode: 'carol' });
  try {
    const text = `deploy finished ${uniqueName('n')}`;
    // A tab lists itself once its own presence note came back: that SEND followed its
    // SUBSCRIBEs on the connection, so the broker has the notifications subscription too.
    for (const tab of tabs)
      await tab.waitForSelector('#presence li[data-user="alice"]', { timeout: WAIT_MS });
    await admin.sendToUser('alice', '/queue/notifications', { from: 'ops', text });
    for (const [i, tab] of tabs.entries()) {
      await tab.waitForSelector(`#notifications li:has-text("${text}")`, { timeout: WAIT_MS });
      await tab.screenshot({ path: `${ARTIFACTS}/same-user-tab-${i + 1}.png` });
      assert.deepEqual(tab.errors, []);
    }
  } finally {
    await admin.close();
    await Promise.all(tabs.map(tab => tab.context().close()));
  }
});

test('the chat demo works between two pages: room, presence, @mention notification', async () => {
  const alice = await login('alice');
  const bob = await login('bob');
  try {
    // Presence: each page lists the other (announced on join and answered).
    await alice.waitForSelector('#presence li[data-user="bob"]', { timeout: WAIT_MS });
    await bob.waitForSelector('#presence li[data-user="alice"]', { timeout: WAIT_MS });

    await alice.fill('#message-input', 'hello bob, @bob look');
    await alice.click('#send-button');
    await bob.fill('#message-input', 'hi alice');
    await bob.press('#message-input', 'Enter');
    for (const page of [alice, bob]) {
      await page.waitForSelector('#messages li:has-text("hello bob, @bob look")', {
        timeout: WAIT_MS,
      });
      await page.waitForSelector('#messages li:has-text("hi alice")', { timeout: WAIT_MS });
    }
    // The @mention reached bob's notifications, not alice's.
    await bob.waitForSelector('#notifications li:has-text("hello bob")', { timeout: WAIT_MS });
    assert.equal(await alice.locator('#notifications li').count(), 0);
    // Messages in the order sent, with their authors.
    const lines = await alice.locator('#messages li').allTextContents();
    assert.deepEqual(lines.slice(-2), ['alicehello bob, @bob look', 'bobhi alice']);

    await alice.screenshot({ path: `${ARTIFACTS}/chat-alice.png` });
    await bob.screenshot({ path: `${ARTIFACTS}/chat-bob.png` });
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  } finally {
    await Promise.all([alice, bob].map(page => page.context().close()));
  }
});
