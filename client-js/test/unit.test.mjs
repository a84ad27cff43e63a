// The client's own logic against an in-process fake broker: what is sent, in which order,
// after a reconnect; request/reply matching by correlation-id.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { connect } from '../dist/esm/index.js';
import { Inbox, nextEvent } from './support/processes.mjs';
import { FakeBroker } from './support/fake-broker.mjs';

function fakeClient(broker, options = {}) {
  return connect({
    url: 'ws://fake/ws',
    WebSocket: broker.WebSocket,
    reconnect: { minDelay: 5, maxDelay: 20 },
    ...options,
  });
}

test('after a reconnect: CONNECT with a fresh token, every SUBSCRIBE, then the queued SENDs in order', async () => {
  const broker = new FakeBroker();
  let tokens = 0;
  const client = fakeClient(broker, { getToken: () => `token-${++tokens}` });
  try {
    await client.whenConnected();
    const kept = client.subscribe('/topic/a', () => {}, { ack: 'client', headers: { 'x-h': '1' } });
    const gone = client.subscribe('/topic/b', () => {});
    client.subscribe('/topic/c', () => {});
    gone.unsubscribe();
    await client.publish('/topic/a', 'live');

    broker.accepting = false;
    const down = nextEvent(client, 'disconnected');
    broker.current.drop();
    await down;
    const queued = ['q1', 'q2', 'q3'].map(body => client.publish('/topic/a', body));
    // Attempts fail while the broker refuses; the publishes keep waiting.
    await nextEvent(client, 'disconnected');
    assert.equal(client.queued, 3);
    broker.accepting = true;
    await Promise.all(queued);

    const last = broker
      .sent(broker.connections.length - 1)
      .map(f => [f.command, f.headers.destination ?? f.headers.passcode, f.body]);
    assert.deepEqual(last, [
      ['CONNECT', `token-${tokens}`, ''],
      ['SUBSCRIBE', '/topic/a', ''],
      ['SUBSCRIBE', '/topic/c', ''],
      ['SEND', '/topic/a', 'q1'],
      ['SEND', '/topic/a', 'q2'],
      ['SEND', '/topic/a', 'q3'],
    ]);
    assert.ok(tokens >= 3, 'a token per attempt');
    const restored = broker.sent(broker.connections.length - 1)[1].headers;
    assert.equal(restored.id, kept.id, 'the same subscription id on every connection');
    assert.equal(restored.ack, 'client');
    assert.equal(restored['x-h'], '1');
    // Nothing queued went out twice over all the connections.
    const sends = broker.connections
      .flatMap(c => c.frames)
      .filter(f => f.command === 'SEND')
      .map(f => f.body);
    assert.deepEqual(sends, ['live', 'q1', 'q2', 'q3']);
  } finally {
    await client.close();
  }
});

test('a publish whose RECEIPT was lost with the connection rejects with connection-lost', async () => {
  const broker = new FakeBroker();
  const client = fakeClient(broker);
  try {
    await client.whenConnected();
    // The RECEIPT is queued for delivery; the drop comes first.
    const pending = client.publish('/topic/x', 'maybe');
    broker.current.drop();
    await assert.rejects(pending, error => error.code === 'connection-lost');
  } finally {
    await client.close();
  }
});

test('request/reply: replies matched by correlation-id, concurrent requests, errors, timeouts', async () => {
  const broker = new FakeBroker();
  const server = fakeClient(broker);
  const caller = fakeClient(broker);
  try {
    await Promise.all([server.whenConnected(), caller.whenConnected()]);
    const seen = new Inbox();
    server.serve('/queue/double', async (body, message) => {
      seen.push(message.headers);
      if (body === 'boom') throw new Error('cannot double boom');
      // Answer out of order: later requests first.
      await new Promise(resolve => setTimeout(resolve, 30 - body * 10));
      return body * 2;
    });
    const replies = await Promise.all([1, 2, 3].map(n => caller.request('/queue/double', n)));
    assert.deepEqual(
      replies.map(r => r.body),
      [2, 4, 6],
    );
    const headers = await seen.next();
    assert.equal(headers['reply-to'], `/user/${caller.session}/queue/herald-replies`);
    assert.ok(headers['correlation-id']);
    await assert.rejects(caller.request('/queue/double', 'boom'), error => {
      assert.equal(error.code, 'request-failed');
      assert.equal(error.message, 'cannot double boom');
      return true;
    });
    await assert.rejects(
      caller.request('/queue/nobody', 1, { timeout: 50 }),
      error => error.code === 'timeout',
    );
    // One reply subscription serves every request.
    const replySubs = broker.connections
      .flatMap(c => c.frames)
      .filter(
        f => f.command === 'SUBSCRIBE' && f.headers.destination === '/user/queue/herald-replies',
      );
    assert.equal(replySubs.length, 1);
  } finally {
    await Promise.all([server.close(), caller.close()]);
  }
});

test('a request made while disconnected waits for the connection, within its timeout', async () => {
  const broker = new FakeBroker();
  broker.accepting = false;
  const client = fakeClient(broker);
  try {
    await assert.rejects(
      client.request('/queue/x', 1, { timeout: 60 }),
      error => error.code === 'timeout',
    );
  } finally {
    await client.close();
  }
});

/** The `attempt` of each of the next `n` reconnecting events. */
function attempts(client, n) {
  return new Promise(resolve => {
    const seen = [];
    const off = client.on('reconnecting', ({ attempt }) => {
      seen.push(attempt);
      if (seen.length === n) {
        off();
        resolve(seen);
      }
    });
  });
}

test('backoff grows over failed attempts and restarts after a connection that stayed up', async () => {
  const broker = new FakeBroker();
  const flaky = fakeClient(broker, {
    reconnect: { minDelay: 5, maxDelay: 20, stableAfter: 60000 },
  });
  const steady = fakeClient(broker, { reconnect: { minDelay: 5, maxDelay: 20, stableAfter: 30 } });
  try {
    await Promise.all([flaky.whenConnected(), steady.whenConnected()]);
    const socketOf = client =>
      broker.connections.filter(c => c.readyState === 1).find(c => c.session === client.session);
    // Three refused attempts each, then both connect again.
    broker.accepting = false;
    const failing = [attempts(flaky, 3), attempts(steady, 3)];
    socketOf(flaky).drop();
    socketOf(steady).drop();
    assert.deepEqual(await Promise.all(failing), [
      [1, 2, 3],
      [1, 2, 3],
    ]);
    broker.accepting = true;
    await Promise.all([nextEvent(flaky, 'connected'), nextEvent(steady, 'connected')]);
    // Up for longer than steady's stableAfter (30 ms), far shorter than flaky's (60 s).
    await new Promise(resolve => setTimeout(resolve, 60));
    const next = [attempts(flaky, 1), attempts(steady, 1)];
    socketOf(flaky).drop();
    socketOf(steady).drop();
    const [[flakyAttempt], [steadyAttempt]] = await Promise.all(next);
    assert.ok(flakyAttempt >= 4, `flaky keeps counting (attempt ${flakyAttempt})`);
    assert.equal(steadyAttempt, 1, 'steady starts from the first window again');
  } finally {
    await Promise.all([flaky.close(), steady.close()]);
  }
});
