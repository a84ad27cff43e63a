// Shared helpers for the @stomp/stompjs suites. Kept outside test/ so `node --test` does not
// run this file as a test of its own.
//
// Every wait is bounded: a broker that never answers makes the test fail with a message that
// says what was being waited for, instead of hanging the run.

import { randomBytes } from 'node:crypto';

import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

/** Default bound for one wait (a CONNECTED, a RECEIPT, a MESSAGE). */
export const WAIT_MS = 5000;

/** What stompjs offers as WebSocket subprotocols by default (peers.md 5.1). */
export const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

/** The broker's WebSocket URL, e.g. `ws://127.0.0.1:40123/ws`, from `HERALD_WS_URL`. */
export function brokerUrl() {
  const url = process.env.HERALD_WS_URL;
  if (!url) {
    throw new Error(
      'HERALD_WS_URL is not set; run scripts/client-tests.sh, or start herald and export ' +
        'HERALD_WS_URL=ws://127.0.0.1:PORT/ws',
    );
  }
  return url;
}

/** A destination prefix no other test (or concurrently running test file) uses. */
export function uniqueTopic(name) {
  return `/topic/js-${process.pid}-${randomBytes(4).toString('hex')}/${name}`;
}

/** Resolves or rejects like `promise`, or rejects after `ms` naming `what`. */
export function withTimeout(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Waits `ms` milliseconds. */
export function sleep(ms) {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/**
 * A queue of received items with a bounded `next()`; the subscription callback pushes into it.
 */
export class Inbox {
  constructor(name = 'inbox') {
    this.name = name;
    this.items = [];
    this.waiters = [];
  }

  push = item => {
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter(item);
    } else {
      this.items.push(item);
    }
  };

  /** The next item, waiting at most `ms`. */
  next(ms = WAIT_MS) {
    if (this.items.length > 0) {
      return Promise.resolve(this.items.shift());
    }
    let waiter;
    const arrived = new Promise(resolve => {
      waiter = resolve;
      this.waiters.push(waiter);
    });
    return withTimeout(arrived, `a message on ${this.name}`, ms).catch(error => {
      // Drop the abandoned waiter so a late message is kept for the next call.
      this.waiters = this.waiters.filter(w => w !== waiter);
      throw error;
    });
  }

  /** How many items arrived and were not taken yet. */
  get pending() {
    return this.items.length;
  }
}

/**
 * A connected stompjs `Client` plus what happened on it: `connected` (the CONNECTED frame),
 * `errors` (ERROR frames), `closes` (WebSocket close events), `disconnects` (DISCONNECT
 * receipts), `unhandled` (MESSAGEs for no live subscription), `log` (stompjs debug lines).
 */
export class Peer {
  constructor(client, name) {
    this.client = client;
    this.name = name;
    this.connected = undefined;
    this.errors = [];
    this.closes = [];
    this.disconnects = [];
    this.unhandled = [];
    this.log = [];
    this.receiptSeq = 0;
  }

  /** A fresh receipt id and a promise for its RECEIPT frame; call before sending the frame. */
  expectReceipt(label = 'r') {
    const id = `${this.name}-${label}-${this.receiptSeq++}`;
    const receipt = withTimeout(
      new Promise(resolve => this.client.watchForReceipt(id, resolve)),
      `RECEIPT ${id} on ${this.name}`,
    );
    return { id, receipt };
  }

  /** SUBSCRIBE with a receipt; resolves to `{ subscription, inbox, receiptFrame }`. */
  async subscribe(destination, headers = {}) {
    const inbox = new Inbox(`${this.name} ${destination}`);
    const { id, receipt } = this.expectReceipt('sub');
    const subscription = this.client.subscribe(destination, inbox.push, {
      ...headers,
      receipt: id,
    });
    const receiptFrame = await receipt;
    return { subscription, inbox, receiptFrame };
  }

  /** SEND with a receipt; resolves to the RECEIPT frame. */
  async publish(params) {
    const { id, receipt } = this.expectReceipt('send');
    this.client.publish({ ...params, headers: { ...(params.headers ?? {}), receipt: id } });
    return receipt;
  }

  /** UNSUBSCRIBE with a receipt; resolves to the RECEIPT frame. */
  async unsubscribe(subscription) {
    const { id, receipt } = this.expectReceipt('unsub');
    subscription.unsubscribe({ receipt: id });
    return receipt;
  }

  /** Throws if the broker sent an ERROR frame on this connection. */
  assertNoErrors() {
    if (this.errors.length > 0) {
      const first = this.errors[0];
      throw new Error(
        `${this.name} got ERROR: ${first.headers.message ?? ''} ${first.body ?? ''}`.trim(),
      );
    }
  }

  /** DISCONNECT (stompjs adds a receipt and closes on it), bounded. */
  async close(ms = WAIT_MS) {
    await withTimeout(this.client.deactivate(), `${this.name} to deactivate`, ms);
  }
}

/**
 * Opens a stompjs client the way browser apps do (subprotocols offered, no reconnect) and
 * resolves once CONNECTED arrives. Rejects on ERROR, on a socket close before CONNECTED, or
 * after `WAIT_MS`.
 */
export async function connect(name, options = {}) {
  if (process.env.HERALD_CLIENT_PACKAGE) {
    return connectThroughPackage(name, options);
  }
  const url = brokerUrl();
  const client = new Client({
    webSocketFactory: () => new WebSocket(url, SUBPROTOCOLS),
    reconnectDelay: 0,
    heartbeatIncoming: 10000,
    heartbeatOutgoing: 10000,
    ...options,
  });
  const peer = new Peer(client, name);
  client.debug = line => {
    peer.log.push(line);
  };

  const connected = new Promise((resolve, reject) => {
    client.onConnect = frame => {
      peer.connected = frame;
      resolve(frame);
    };
    client.onStompError = frame => {
      peer.errors.push(frame);
      reject(new Error(`ERROR before CONNECTED: ${frame.headers.message ?? frame.body}`));
    };
    client.onWebSocketClose = event => {
      peer.closes.push(event);
      reject(new Error(`WebSocket closed before CONNECTED (code ${event?.code})`));
    };
    client.onWebSocketError = event => {
      reject(new Error(`WebSocket error: ${event?.message ?? event}`));
    };
  });
  client.activate();
  try {
    await withTimeout(connected, `CONNECTED on ${name}`);
  } catch (error) {
    await client.deactivate({ force: true }).catch(() => {});
    throw error;
  }
  // After CONNECTED, record instead of rejecting; tests check `errors`/`closes`.
  client.onStompError = frame => peer.errors.push(frame);
  client.onWebSocketClose = event => peer.closes.push(event);
  client.onDisconnect = frame => peer.disconnects.push(frame);
  client.onWebSocketError = () => {};
  // MESSAGE frames whose `subscription` matches no live subscription of this client.
  client.onUnhandledMessage = message => peer.unhandled.push(message);
  return peer;
}

/**
 * `connect` through Herald's own client package (`client-js`, its built ESM entry named by
 * `HERALD_CLIENT_PACKAGE`; scripts/client-js-tests.sh sets it): the package opens the
 * connection (WebSocket, sub-protocols, heart-beats, CONNECT headers) with reconnects off, and
 * the tests then drive the stompjs client it created. Same peer, same assertions.
 */
async function connectThroughPackage(name, options) {
  const { connect: heraldConnect } = await import(process.env.HERALD_CLIENT_PACKAGE);
  const { connectHeaders, heartbeatIncoming = 10000, heartbeatOutgoing = 10000, ...stomp } = options;
  const herald = heraldConnect({
    url: brokerUrl(),
    connectHeaders,
    heartbeat: { incoming: heartbeatIncoming, outgoing: heartbeatOutgoing },
    reconnect: false,
    connectTimeout: WAIT_MS,
    stomp,
  });
  const peer = new Peer(null, name);
  const stops = [];
  const connected = new Promise((resolve, reject) => {
    stops.push(
      herald.on('connected', ({ frame }) => resolve(frame)),
      herald.onError(({ message, body }) => reject(new Error(`ERROR before CONNECTED: ${message ?? body}`))),
      herald.on('disconnected', ({ code }) => reject(new Error(`WebSocket closed before CONNECTED (code ${code})`))),
    );
  });
  try {
    peer.connected = await withTimeout(connected, `CONNECTED on ${name} (through the package)`);
  } catch (error) {
    await herald.close();
    throw error;
  } finally {
    stops.forEach(stop => stop());
  }
  const client = herald.stomp;
  peer.client = client;
  client.debug = line => peer.log.push(line);
  herald.onError(({ frame }) => peer.errors.push(frame));
  herald.on('disconnected', event => peer.closes.push(event));
  client.onDisconnect = frame => peer.disconnects.push(frame);
  client.onUnhandledMessage = message => peer.unhandled.push(message);
  return peer;
}

/** Runs `body(peers...)` with freshly connected peers, closing them afterwards whatever happens. */
export async function withPeers(names, body) {
  const peers = [];
  try {
    for (const name of names) {
      peers.push(await connect(name));
    }
    await body(...peers);
    for (const peer of peers) {
      peer.assertNoErrors();
    }
  } finally {
    for (const peer of peers) {
      await closeQuietly(peer);
    }
  }
}

/** Best-effort close for cleanup: DISCONNECT if still connected, else (or if that stalls) drop. */
export async function closeQuietly(peer) {
  const { client } = peer;
  if (client.connected) {
    try {
      await withTimeout(client.deactivate(), `${peer.name} to deactivate`);
      return;
    } catch {
      // fall through to a forced close
    }
  }
  await client.deactivate({ force: true }).catch(() => {});
}
