// Connection life cycle as @stomp/stompjs drives it: WebSocket subprotocol, CONNECT/CONNECTED,
// heart-beats, DISCONNECT with a receipt.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Versions } from '@stomp/stompjs';
import WebSocket from 'ws';

import { brokerUrl, closeQuietly, connect, withTimeout, WAIT_MS } from '../lib/harness.js';

test('CONNECTED reports STOMP 1.2, the server name and the v12.stomp subprotocol', async () => {
  const peer = await connect('handshake');
  try {
    const { headers } = peer.connected;
    assert.equal(headers.version, '1.2');
    assert.ok(
      headers.server?.startsWith('herald/'),
      `server header should start with herald/, got ${headers.server}`,
    );
    assert.match(headers['heart-beat'] ?? '', /^\d+,\d+$/, 'heart-beat header');
    assert.equal(peer.client.connectedVersion, '1.2');
    // Browsers fail the handshake when subprotocols were offered and none is selected.
    assert.equal(peer.client.webSocket.protocol, 'v12.stomp');
    assert.equal(peer.client.connected, true);
    peer.assertNoErrors();
  } finally {
    await closeQuietly(peer);
  }
});

test('a client limited to STOMP 1.1 gets version 1.1 and the v11.stomp subprotocol', async () => {
  const url = brokerUrl();
  const peer = await connect('v11', {
    stompVersions: new Versions([Versions.V1_1]),
    webSocketFactory: () => new WebSocket(url, ['v11.stomp']),
  });
  try {
    assert.equal(peer.connected.headers.version, '1.1');
    assert.equal(peer.client.connectedVersion, '1.1');
    assert.equal(peer.client.webSocket.protocol, 'v11.stomp');
  } finally {
    await closeQuietly(peer);
  }
});

test('deactivate() sends DISCONNECT with a receipt and resolves on the RECEIPT', async () => {
  const peer = await connect('disconnect');
  await peer.close();
  assert.equal(peer.disconnects.length, 1, 'onDisconnect is called once, on the RECEIPT');
  const receipt = peer.disconnects[0];
  assert.equal(receipt.command, 'RECEIPT');
  assert.match(receipt.headers['receipt-id'], /^close-\d+$/);
  assert.equal(peer.client.active, false);
  assert.equal(peer.client.connected, false);
  assert.equal(peer.closes.length, 1, 'the WebSocket closed once');
  peer.assertNoErrors();
});

test('a DISCONNECT receipt id chosen by the application is echoed', async () => {
  const peer = await connect('disconnect-custom', {
    disconnectHeaders: { receipt: 'goodbye-42' },
  });
  await peer.close();
  assert.equal(peer.disconnects.length, 1);
  assert.equal(peer.disconnects[0].headers['receipt-id'], 'goodbye-42');
  peer.assertNoErrors();
});

test('the server sends heart-beats at the negotiated rate', { timeout: 60000 }, async t => {
  let beats = 0;
  let firstBeat;
  const beat = new Promise(resolve => {
    firstBeat = resolve;
  });
  const peer = await connect('heartbeat', {
    heartbeatIncoming: 1000,
    heartbeatOutgoing: 1000,
    onHeartbeatReceived: () => {
      beats += 1;
      firstBeat();
    },
  });
  try {
    const [serverSends] = peer.connected.headers['heart-beat'].split(',').map(Number);
    if (serverSends === 0) {
      t.skip('server offers no heart-beats (heart-beat: 0,...)');
      return;
    }
    // Server sends every max(sx, cy); allow one and a half periods plus scheduling slack.
    const every = Math.max(serverSends, 1000);
    await withTimeout(beat, `a server heart-beat (negotiated every ${every} ms)`, every * 1.5 + WAIT_MS);
    assert.ok(beats >= 1);
    assert.equal(peer.client.connected, true, 'still connected after the idle period');
    assert.equal(peer.closes.length, 0);
    peer.assertNoErrors();
  } finally {
    await closeQuietly(peer);
  }
});
