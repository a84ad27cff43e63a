// The client against one real herald: confirmed publishes, bodies, ERROR, user destinations,
// request/reply, HeraldAdmin over STOMP and over the HTTP API.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { HeraldAdmin, connect } from '../dist/esm/index.js';
import { Inbox, nextEvent, startHerald, uniqueName } from './support/processes.mjs';

let herald;
const clients = [];
const API_KEY = `client-js-${process.pid}-0123456789abcdef`;

before(async () => {
  herald = await startHerald({
    http: true,
    args: [
      '--user',
      'alice:alice-pw',
      '--user',
      'bob:bob-pw',
      '--user',
      'svc:svc-pw',
      '--user',
      'dora:dora-pw',
      '--api-key',
      API_KEY,
    ],
  });
});

after(async () => {
  await Promise.all(clients.map(c => c.close()));
  await herald?.stop();
});

/** A connected client, closed after the file's tests. */
async function open(options = {}) {
  const client = connect({
    url: herald.url,
    reconnect: { minDelay: 50, maxDelay: 500 },
    ...options,
  });
  clients.push(client);
  await client.whenConnected();
  return client;
}

test('publish resolves on RECEIPT; JSON, text and binary bodies arrive as sent', async () => {
  const client = await open();
  const topic = `/topic/${uniqueName('bodies')}`;
  const inbox = new Inbox();
  client.subscribe(topic, inbox.push);
  // The SUBSCRIBE is ahead of the SEND on the same connection, so nothing is missed.
  await client.publish(topic, { price: 142.5, tags: ['a'] });
  await client.publish(topic, 'plain text');
  const bytes = new Uint8Array([0, 1, 2, 0xff, 0xfe]);
  await client.publish(topic, bytes);
  const json = await inbox.next();
  assert.deepEqual(json.body, { price: 142.5, tags: ['a'] });
  assert.equal(json.headers['content-type'], 'application/json');
  assert.equal((await inbox.next()).body, 'plain text');
  const binary = await inbox.next();
  assert.deepEqual([...binary.body], [...bytes]);
  assert.equal(binary.destination, topic);
});

test('an ERROR rejects the publish it answers, reaches onError, and the client reconnects', async () => {
  const client = await open();
  const errors = [];
  client.onError(error => errors.push(error));
  const reconnected = nextEvent(client, 'connected');
  // A user destination without anything after the name is ERROR `invalid destination`.
  await assert.rejects(client.publish('/user/nobody', 'x'), error => {
    assert.equal(error.code, 'broker-error');
    assert.match(error.message, /invalid destination/);
    return true;
  });
  assert.match(errors[0].message, /invalid destination/);
  await reconnected;
  await client.publish(`/topic/${uniqueName('after-error')}`, 'fine again');
});

test('a RECEIPT that never comes times out', async () => {
  const client = await open();
  await herald.pause();
  try {
    await assert.rejects(
      client.publish(`/topic/${uniqueName('paused')}`, 'x', { timeout: 300 }),
      error => error.code === 'timeout',
    );
  } finally {
    herald.resume();
  }
  await client.publish(`/topic/${uniqueName('resumed')}`, 'x');
});

test('two clients of one user both get a message sent to that user', async () => {
  const tabs = [
    await open({ login: 'alice', passcode: 'alice-pw' }),
    await open({ login: 'alice', passcode: 'alice-pw' }),
  ];
  const bob = await open({ login: 'bob', passcode: 'bob-pw' });
  assert.equal(tabs[0].userName, 'alice');
  assert.notEqual(tabs[0].session, tabs[1].session);
  const inboxes = tabs.map(tab => {
    const inbox = new Inbox();
    tab.subscribe(tab.user('/queue/notes'), inbox.push);
    return inbox;
  });
  // A receipt for each SUBSCRIBE: the user's subscriptions exist before bob sends.
  await Promise.all(tabs.map(tab => tab.publish(`/topic/${uniqueName('sync')}`, '')));
  await bob.sendToUser('alice', '/queue/notes', { from: 'bob', text: 'hello both' });
  for (const inbox of inboxes) {
    const message = await inbox.next();
    assert.deepEqual(message.body, { from: 'bob', text: 'hello both' });
    assert.equal(message.destination, '/user/queue/notes');
  }
});

test('request/reply through the broker with reply-to and correlation-id', async () => {
  const server = await open();
  const requester = await open();
  const service = `/queue/${uniqueName('echo')}`;
  server.serve(service, (body, message) => {
    assert.match(message.headers['reply-to'], /^\/user\/.+\/queue\/herald-replies$/);
    if (body.fail) throw new Error('no such thing');
    return { echo: body.n * 2 };
  });
  await server.publish(`/topic/${uniqueName('sync')}`, '');
  const replies = await Promise.all([1, 2, 3].map(n => requester.request(service, { n })));
  assert.deepEqual(
    replies.map(r => r.body),
    [{ echo: 2 }, { echo: 4 }, { echo: 6 }],
  );
  await assert.rejects(requester.request(service, { fail: true }), error => {
    assert.equal(error.code, 'request-failed');
    assert.equal(error.message, 'no such thing');
    return true;
  });
  await assert.rejects(
    requester.request(`/queue/${uniqueName('nobody-serves')}`, {}, { timeout: 300 }),
    error => error.code === 'timeout',
  );
});

test('HeraldAdmin over STOMP: sendToUser and broadcast; the calls that need HTTP say so', async () => {
  const admin = HeraldAdmin.overStomp({ url: herald.url, login: 'svc', passcode: 'svc-pw' });
  clients.push(admin.transport.client);
  const alice = await open({ login: 'alice', passcode: 'alice-pw' });
  const notes = new Inbox();
  const news = new Inbox();
  const topic = `/topic/${uniqueName('news')}`;
  alice.subscribe(alice.user('/queue/admin'), notes.push);
  alice.subscribe(topic, news.push);
  await alice.publish(`/topic/${uniqueName('sync')}`, '');
  await admin.sendToUser('alice', '/queue/admin', { kind: 'notice' });
  await admin.broadcast(topic, 'to everyone');
  assert.deepEqual((await notes.next()).body, { kind: 'notice' });
  assert.equal((await news.next()).body, 'to everyone');
  await assert.rejects(admin.broadcast('/queue/x', 'no'), TypeError);
  for (const call of [
    () => admin.disconnectUser('alice'),
    () => admin.presence(),
    () => admin.stats(),
  ]) {
    await assert.rejects(call(), error => error.code === 'not-supported');
  }
});

test('HeraldAdmin over the HTTP API: publish, sendToUser, broadcast, presence, stats, disconnectUser', async () => {
  const admin = HeraldAdmin.overHttp({ url: herald.api, apiKey: API_KEY });
  // A user no other test logs in as: presence counts exactly these two tabs.
  const name = 'dora';
  const tabs = [
    await open({ login: name, passcode: 'dora-pw' }),
    await open({ login: name, passcode: 'dora-pw' }),
  ];
  const notes = tabs.map(() => new Inbox());
  const topics = [`/topic/${uniqueName('a')}`, `/topic/${uniqueName('b')}`];
  const news = new Inbox();
  tabs.forEach((tab, i) => tab.subscribe(tab.user('/queue/http'), notes[i].push));
  topics.forEach(topic => tabs[0].subscribe(topic, news.push));
  await Promise.all(tabs.map(tab => tab.publish(`/topic/${uniqueName('sync')}`, '')));

  assert.deepEqual(await admin.sendToUser(name, '/queue/http', { kind: 'notice' }), {
    matched: 2,
    forwarded: false,
  });
  for (const inbox of notes) assert.deepEqual((await inbox.next()).body, { kind: 'notice' });
  const bytes = new Uint8Array([0, 1, 0xff]);
  assert.equal((await admin.publish(topics[0], bytes)).matched, 1);
  assert.deepEqual([...(await news.next()).body], [...bytes]);
  assert.equal((await admin.broadcast(topics, 'to both')).matched, 2);
  assert.deepEqual([(await news.next()).body, (await news.next()).body], ['to both', 'to both']);

  assert.deepEqual(await admin.presence(name), [{ user: name, sessions: 2 }]);
  assert.ok((await admin.presence()).some(p => p.user === name && p.sessions === 2));
  assert.deepEqual(await admin.presence('nobody-here'), []);
  assert.ok(Number((await admin.stats()).connections) >= 2);

  const kicked = tabs.map(tab => new Promise(resolve => tab.onError(resolve)));
  assert.equal(await admin.disconnectUser(name, 'maintenance'), 2);
  for (const error of await Promise.all(kicked)) {
    assert.equal(error.message, 'disconnected');
    assert.equal(error.body, 'maintenance');
  }
  const refused = HeraldAdmin.overHttp({ url: herald.api, apiKey: 'not-a-key-0123456789' });
  await assert.rejects(
    refused.stats(),
    error => error.code === 'api-error' && error.status === 401,
  );
  await assert.rejects(
    admin.publish('/nowhere/x', 'x'),
    error => error.code === 'api-error' && error.status === 422,
  );
});
