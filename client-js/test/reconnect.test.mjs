// Reconnects against real brokers: a herald killed and restarted on its port, a node of a
// two-node cluster dying under a client that has both URLs.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { connect } from '../dist/esm/index.js';
import {
  Inbox,
  hs256,
  nextEvent,
  startHerald,
  startHeraldOnFixedPort,
  startNats,
  uniqueName,
} from './support/processes.mjs';

const SECRET = `client-js-${process.pid}-${Math.random()}`;
const JWT = `[jwt]\nenabled = true\nalgorithm = "HS256"\nsecret = "${SECRET}"\n`;

test('broker killed and restarted: token fetched again, subscriptions restored, queue flushed once in order', async () => {
  let herald = await startHeraldOnFixedPort({ toml: JWT });
  let tokens = 0;
  const client = connect({
    url: herald.url,
    getToken: async () => {
      tokens += 1;
      return hs256(SECRET, 'carol');
    },
    reconnect: { minDelay: 100, maxDelay: 400 },
  });
  const states = [];
  for (const state of ['connecting', 'connected', 'disconnected', 'reconnecting']) {
    client.on(state, value => states.push([state, value]));
  }
  try {
    await client.whenConnected();
    assert.equal(client.userName, 'carol');
    const topic = `/topic/${uniqueName('restart')}`;
    const inbox = new Inbox();
    client.subscribe(topic, inbox.push);
    const userInbox = new Inbox();
    client.subscribe(client.user('/queue/restart'), userInbox.push);
    await client.publish(topic, 'before');
    assert.equal((await inbox.next()).body, 'before');

    const disconnected = nextEvent(client, 'disconnected');
    await herald.kill();
    await disconnected;
    // Published while the broker is down: they wait in the queue, in order.
    const sent = ['m1', 'm2', 'm3', 'm4', 'm5'].map(body => client.publish(topic, body));
    const toSelf = client.sendToUser('carol', '/queue/restart', { n: 1 });
    assert.equal(client.queued, 6);
    assert.equal(client.connected, false);

    const reconnected = nextEvent(client, 'connected', 20000);
    herald = await startHerald({ toml: JWT, wsPort: herald.port });
    await reconnected;
    await Promise.all([...sent, toSelf]);
    assert.equal(client.queued, 0);
    // Restored before the flush, so the subscriptions saw every queued publish.
    for (const body of ['m1', 'm2', 'm3', 'm4', 'm5']) {
      assert.equal((await inbox.next()).body, body);
    }
    assert.deepEqual((await userInbox.next()).body, { n: 1 });
    // Sent once: the next message after them is a fresh one.
    await client.publish(topic, 'after');
    assert.equal((await inbox.next()).body, 'after');
    assert.ok(tokens >= 2, `getToken called before each connect (${tokens} calls)`);
    const reconnecting = states.filter(([s]) => s === 'reconnecting').map(([, v]) => v);
    assert.ok(reconnecting.length >= 1);
    for (const { delay, attempt } of reconnecting) {
      assert.ok(
        delay >= 0 && delay <= Math.min(400, 100 * 2 ** (attempt - 1)),
        `delay ${delay} of attempt ${attempt}`,
      );
    }
  } finally {
    await client.close();
    await herald.stop();
  }
});

test('a client on node A of a two-node cluster moves to node B when A dies, keeping its subscriptions', async () => {
  const nats = await startNats();
  const cluster = node => `[cluster]\nservers = ["${nats.url}"]\nnode_id = "node${node}"\n`;
  const a = await startHerald({ toml: cluster('a') });
  const b = await startHerald({ toml: cluster('b') });
  const client = connect({ url: [a.url, b.url], reconnect: { minDelay: 50, maxDelay: 200 } });
  const publisher = connect({ url: b.url, reconnect: false });
  try {
    const first = await nextEvent(client, 'connected');
    assert.equal(first.url, a.url);
    await publisher.whenConnected();
    const topic = `/topic/${uniqueName('cluster')}`;
    const inbox = new Inbox();
    client.subscribe(topic, inbox.push);
    await client.publish(topic, 'sync');
    assert.equal((await inbox.next()).body, 'sync');
    // From B to a subscriber on A: across the cluster.
    await waitAcross(publisher, inbox, topic);

    const moved = nextEvent(client, 'connected', 20000);
    await a.kill();
    const second = await moved;
    assert.equal(second.url, b.url);
    // The restored SUBSCRIBE is ahead of this SEND on the connection: B has it now.
    await client.publish(topic, 'on b');
    assert.equal(await nextBody(inbox), 'on b');
    await publisher.publish(topic, 'from the publisher');
    assert.equal(await nextBody(inbox), 'from the publisher');
  } finally {
    await client.close();
    await publisher.close();
    await Promise.all([a.stop(), b.stop()]);
    await nats.stop();
  }
});

/**
 * Publishes from `publisher` until the subscriber on the other node gets one: the interest of a
 * new subscription reaches the other node a round trip later (docs/destinations.md).
 */
async function waitAcross(publisher, inbox, topic) {
  for (let i = 0; i < 50; i++) {
    await publisher.publish(topic, `across ${i}`);
    try {
      const message = await inbox.next(200);
      if (message.body.startsWith('across')) return;
    } catch {
      // not yet across
    }
  }
  throw new Error('no message crossed from node B to node A');
}

/** The next body that is not a late copy of `waitAcross`'s probes. */
async function nextBody(inbox) {
  for (;;) {
    const { body } = await inbox.next();
    if (!body.startsWith('across')) return body;
  }
}
