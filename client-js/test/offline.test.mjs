// The offline queue and bodies, without a broker: publishes wait while nothing answers.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';

import {
  HeraldError,
  OfflineQueue,
  connect,
  decodeBody,
  encodeBody,
  user,
  userDestination,
} from '../dist/esm/index.js';

/** A loopback URL on which nothing listens (a port bound, then released). */
async function deadUrl() {
  const server = createServer();
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise(resolve => server.close(resolve));
  return `ws://127.0.0.1:${port}/ws`;
}

test('OfflineQueue keeps order, rejects past its capacity and drains once', () => {
  const rejected = [];
  const item = name => ({ name, reject: error => rejected.push([name, error.code]) });
  const queue = new OfflineQueue(2);
  queue.push(item('a'));
  queue.push(item('b'));
  queue.push(item('c'));
  assert.deepEqual(rejected, [['c', 'queue-full']]);
  assert.deepEqual(
    queue.drain().map(i => i.name),
    ['a', 'b'],
  );
  assert.equal(queue.length, 0);
  assert.deepEqual(queue.drain(), []);
  assert.throws(() => new OfflineQueue(-1), RangeError);
});

test('publishes wait while disconnected; overflow and close reject them', async () => {
  const client = connect({
    url: await deadUrl(),
    maxQueued: 3,
    reconnect: { minDelay: 50, maxDelay: 100 },
  });
  try {
    const waiting = [1, 2, 3].map(i => client.publish('/topic/t', `m${i}`));
    assert.equal(client.queued, 3);
    await assert.rejects(
      client.publish('/topic/t', 'm4'),
      e => e instanceof HeraldError && e.code === 'queue-full',
    );
    assert.equal(client.queued, 3);
    const settled = Promise.allSettled(waiting);
    await client.close();
    for (const result of await settled) {
      assert.equal(result.status, 'rejected');
      assert.equal(result.reason.code, 'closed');
    }
    await assert.rejects(client.publish('/topic/t', 'late'), e => e.code === 'closed');
  } finally {
    await client.close();
  }
});

test('reconnect attempts report growing jittered delays', async () => {
  const client = connect({ url: await deadUrl(), reconnect: { minDelay: 20, maxDelay: 80 } });
  const delays = [];
  try {
    await new Promise(resolve => {
      client.on('reconnecting', ({ delay, attempt }) => {
        delays.push([attempt, delay]);
        if (delays.length === 5) resolve();
      });
    });
  } finally {
    await client.close();
  }
  assert.deepEqual(
    delays.map(([a]) => a),
    [1, 2, 3, 4, 5],
  );
  const windows = [20, 40, 80, 80, 80];
  delays.forEach(([, delay], i) =>
    assert.ok(delay >= 0 && delay <= windows[i], `delay ${delay} <= ${windows[i]}`),
  );
  assert.equal(client.state, 'closed');
});

test('bodies: strings as they are, bytes binary, anything else JSON', () => {
  assert.deepEqual(encodeBody('hi'), { body: 'hi', headers: {} });
  assert.deepEqual(encodeBody({ a: 1 }), {
    body: '{"a":1}',
    headers: { 'content-type': 'application/json' },
  });
  assert.deepEqual(encodeBody(null).body, 'null');
  const bytes = new Uint8Array([0, 1, 255]);
  assert.deepEqual(encodeBody(bytes), {
    binaryBody: bytes,
    headers: { 'content-type': 'application/octet-stream' },
  });
  assert.deepEqual(encodeBody(bytes, { 'Content-Type': 'image/png' }).headers, {
    'Content-Type': 'image/png',
  });
  const message = (type, body) => ({
    headers: type ? { 'content-type': type } : {},
    body,
    binaryBody: new TextEncoder().encode(body),
  });
  assert.deepEqual(decodeBody(message('application/json;charset=utf-8', '{"x":[1]}')), { x: [1] });
  assert.equal(decodeBody(message('application/json', 'not json')), 'not json');
  assert.equal(decodeBody(message(undefined, 'plain')), 'plain');
  assert.equal(decodeBody(message('text/plain', 'plain')), 'plain');
  assert.ok(decodeBody(message('application/octet-stream', 'ab')) instanceof Uint8Array);
});

test('user destinations', () => {
  assert.equal(user('/queue/x'), '/user/queue/x');
  assert.equal(userDestination('alice', '/queue/x'), '/user/alice/queue/x');
  assert.equal(userDestination('org/alice', '/queue/x'), '/user/org%2Falice/queue/x');
  assert.throws(() => user('queue/x'), TypeError);
  assert.throws(() => userDestination('', '/queue/x'), TypeError);
});
