// @stomp/stompjs over wss:// (issue 12, item 8): the broker started by scripts/client-tests.sh
// with TLS on its WebSocket listener (HERALD_WSS_URL), a certificate signed by the test CA
// (HERALD_TLS_CA, broker/tests/fixtures/tls/ca.pem), given to the `ws` package as its `ca`.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import WebSocket from 'ws';

import { SUBPROTOCOLS, closeQuietly, connect, uniqueTopic } from '../lib/harness.js';

function tlsBroker() {
  const url = process.env.HERALD_WSS_URL;
  const caFile = process.env.HERALD_TLS_CA;
  if (!url || !caFile) {
    throw new Error(
      'HERALD_WSS_URL and HERALD_TLS_CA are not set; run scripts/client-tests.sh, or start a ' +
        'herald with [websocket.tls] and export them',
    );
  }
  return { url, ca: readFileSync(caFile) };
}

test('stompjs publishes and receives over wss:// with the test CA', async () => {
  const { url, ca } = tlsBroker();
  const factory = () => new WebSocket(url, SUBPROTOCOLS, { ca });
  const sub = await connect('wss-sub', { webSocketFactory: factory });
  const pub = await connect('wss-pub', { webSocketFactory: factory });
  try {
    assert.equal(sub.client.webSocket.protocol, 'v12.stomp');
    const topic = uniqueTopic('wss');
    const { inbox } = await sub.subscribe(topic);
    await pub.publish({ destination: topic, body: 'over TLS' });
    const message = await inbox.next();
    assert.equal(message.body, 'over TLS');
    sub.assertNoErrors();
    pub.assertNoErrors();
  } finally {
    await closeQuietly(sub);
    await closeQuietly(pub);
  }
});

test('a client that does not trust the test CA fails the handshake', async () => {
  const { url } = tlsBroker();
  await assert.rejects(
    connect('wss-untrusted', { webSocketFactory: () => new WebSocket(url, SUBPROTOCOLS) }),
    /WebSocket (error|closed before CONNECTED)/,
  );
});
