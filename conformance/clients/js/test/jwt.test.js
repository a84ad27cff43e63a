// A browser app authenticating with a JSON Web Token passed through stompjs's
// `connectHeaders`, then using a per-user destination. The runner starts herald with an
// HS256 secret in HERALD_JWT_SECRET and audience `herald-client-tests`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';

import { closeQuietly, connect, uniqueTopic } from '../lib/harness.js';

const AUDIENCE = 'herald-client-tests';

function secret() {
  const value = process.env.HERALD_JWT_SECRET;
  if (!value) {
    throw new Error('HERALD_JWT_SECRET is not set; run scripts/client-tests.sh');
  }
  return value;
}

/** An HS256 token for `sub`, valid for `seconds` (negative: already expired). */
function token(sub, seconds = 300, audience = AUDIENCE) {
  const part = value => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, aud: audience, exp: now + seconds })}`;
  const signature = createHmac('sha256', secret()).update(unsigned).digest('base64url');
  return `${unsigned}.${signature}`;
}

test('a JWT as passcode authenticates the session and names its user', async () => {
  const peer = await connect('jwt-passcode', {
    connectHeaders: { login: '', passcode: token('carol') },
  });
  try {
    assert.equal(peer.connected.headers['user-name'], 'carol');
  } finally {
    await closeQuietly(peer);
  }
});

test('a JWT in an Authorization header reaches the user through /user/ destinations', async () => {
  const user = `dave-${uniqueTopic('u').split('/')[2]}`;
  const carolTab = await connect('jwt-bearer', {
    connectHeaders: { Authorization: `Bearer ${token(user)}` },
  });
  const sender = await connect('jwt-sender');
  try {
    assert.equal(carolTab.connected.headers['user-name'], user);
    const { inbox } = await carolTab.subscribe('/user/queue/notice');
    await sender.publish({ destination: `/user/${user}/queue/notice`, body: 'for you' });
    const message = await inbox.next();
    assert.equal(message.body, 'for you');
    assert.equal(message.headers.destination, '/user/queue/notice');
    carolTab.assertNoErrors();
    sender.assertNoErrors();
  } finally {
    await closeQuietly(carolTab);
    await closeQuietly(sender);
  }
});

test('an expired JWT or one for another audience is refused with ERROR', async () => {
  await assert.rejects(
    connect('jwt-expired', { connectHeaders: { passcode: token('erin', -3600) } }),
    /ERROR before CONNECTED/,
  );
  await assert.rejects(
    connect('jwt-audience', { connectHeaders: { passcode: token('erin', 300, 'someone-else') } }),
    /ERROR before CONNECTED/,
  );
});
