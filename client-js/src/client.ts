/**
 * The Herald client: one @stomp/stompjs `Client` per connection attempt, with our own
 * reconnect loop around it (jittered backoff, a list of URLs), subscriptions restored on every
 * connection before the offline queue is flushed, and publishes confirmed by RECEIPT.
 */

import {
  Client,
  type IFrame,
  type IMessage,
  type StompConfig,
  type StompSubscription,
} from '@stomp/stompjs';

import { type Backoff, type ReconnectOptions, backoffDelay, backoffOf } from './backoff.js';
import { type Body, decodeBody, encodeBody } from './body.js';
import { HeraldError } from './errors.js';
import { Emitter } from './events.js';
import { OfflineQueue } from './queue.js';
import { user, userDestination } from './user.js';
import { SUBPROTOCOLS, type WebSocketClass, webSocketClass } from './websocket.js';

export interface ConnectOptions {
  /** `ws://host:15674/ws`, or several: each reconnect tries the next one. */
  url: string | string[];
  /** A JWT, sent as the CONNECT passcode. */
  token?: string;
  /** Called before every (re)connect for a fresh token; wins over `token`. */
  getToken?: () => string | Promise<string>;
  login?: string;
  passcode?: string;
  /** Extra CONNECT headers. */
  connectHeaders?: Record<string, string>;
  /** Heart-beats in ms (0 turns one off). Default: 10000 both ways. */
  heartbeat?: { incoming?: number; outgoing?: number };
  /** Backoff between reconnects, or `false` for none. */
  reconnect?: ReconnectOptions | false;
  /** How many publishes may wait while disconnected; more are rejected. Default 1000. */
  maxQueued?: number;
  /** How long one connection attempt may take until CONNECTED, in ms. Default 10000. */
  connectTimeout?: number;
  /** How long a publish waits for its RECEIPT, in ms. Default 10000. */
  receiptTimeout?: number;
  /** The WebSocket class to use (default: the platform's, else the `ws` package). */
  WebSocket?: WebSocketClass;
  /** @stomp/stompjs settings applied to every connection, last (an escape hatch). */
  stomp?: Partial<StompConfig>;
}

export type State = 'connecting' | 'connected' | 'disconnected' | 'reconnecting' | 'closed';

export interface ClientEvents extends Record<string, unknown> {
  connecting: { url: string; attempt: number };
  connected: { url: string; session?: string; user?: string; frame: IFrame };
  disconnected: { url: string; code?: number; reason?: string };
  reconnecting: { delay: number; attempt: number };
  closed: undefined;
  error: { message: string; body: string; frame: IFrame };
}

export interface HeraldMessage {
  destination: string;
  headers: Record<string, string>;
  /** Parsed JSON, a string or bytes, by content type (see `decodeBody`). */
  body: unknown;
  /** The raw body. */
  bytes: Uint8Array;
  ack(headers?: Record<string, string>): void;
  nack(headers?: Record<string, string>): void;
}

export interface SubscribeOptions {
  ack?: 'auto' | 'client' | 'client-individual';
  headers?: Record<string, string>;
}

export interface Subscription {
  readonly id: string;
  readonly destination: string;
  unsubscribe(): void;
}

export interface PublishOptions {
  headers?: Record<string, string>;
  /** Wait for the broker's RECEIPT (default). `false` resolves once the frame is written. */
  receipt?: boolean;
  /** RECEIPT timeout for this publish, in ms. */
  timeout?: number;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  /** How long to wait for the connection and the reply, in ms. Default 10000. */
  timeout?: number;
}

interface Outgoing {
  destination: string;
  encoded: ReturnType<typeof encodeBody>;
  receipt: boolean;
  timeout: number;
  resolve(): void;
  reject(error: Error): void;
}

interface LiveSubscription {
  id: string;
  destination: string;
  headers: Record<string, string>;
  handler: (message: HeraldMessage) => void;
  stomp?: StompSubscription;
}

const DEFAULT_TIMEOUT = 10000;
/** Replies to `request` come to this session-private queue, one subscription for all. */
const REPLY_QUEUE = '/queue/herald-replies';
/** A `serve` handler that threw answers with this header set (and the message as body). */
const ERROR_HEADER = 'herald-error';

let instances = 0;

/** Starts connecting and returns the client at once; see `HeraldClient.whenConnected`. */
export function connect(options: ConnectOptions): HeraldClient {
  return new HeraldClient(options);
}

export class HeraldClient {
  private readonly urls: string[];
  private readonly backoff: Backoff | null;
  private readonly events = new Emitter<ClientEvents>();
  private readonly queue: OfflineQueue<Outgoing>;
  private readonly subscriptions = new Map<string, LiveSubscription>();
  private readonly receipts = new Map<
    string,
    { reject(error: Error): void; timer: ReturnType<typeof setTimeout> }
  >();
  private readonly requests = new Map<
    string,
    { resolve(m: HeraldMessage): void; reject(e: Error): void }
  >();
  private readonly prefix = `h${(instances++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  private current: Client | null = null;
  private connectedAt: number | null = null;
  private attempt = 0;
  private urlIndex = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private seq = 0;
  private replySubscription: Subscription | null = null;
  private _state: State = 'connecting';
  private _session?: string;
  private _user?: string;

  constructor(private readonly options: ConnectOptions) {
    this.urls = Array.isArray(options.url) ? [...options.url] : [options.url];
    if (this.urls.length === 0) throw new TypeError('connect needs at least one url');
    this.backoff = options.reconnect === false ? null : backoffOf(options.reconnect);
    this.queue = new OfflineQueue(options.maxQueued ?? 1000);
    void this.open();
  }

  get state(): State {
    return this._state;
  }

  get connected(): boolean {
    return this._state === 'connected';
  }

  /** CONNECTED `session` of the current connection. */
  get session(): string | undefined {
    return this._session;
  }

  /** CONNECTED `user-name` of the current connection (unset for anonymous sessions). */
  get userName(): string | undefined {
    return this._user;
  }

  /** The stompjs client of the current connection, for what this package does not wrap. */
  get stomp(): Client | null {
    return this.current;
  }

  /** Publishes waiting for a connection. */
  get queued(): number {
    return this.queue.length;
  }

  on<K extends keyof ClientEvents>(
    event: K,
    listener: (value: ClientEvents[K]) => void,
  ): () => void {
    return this.events.on(event, listener);
  }

  /** Every ERROR frame the broker sends (the connection closes after it). */
  onError(listener: (error: ClientEvents['error']) => void): () => void {
    return this.events.on('error', listener);
  }

  /** Resolves once connected (at once if connected now); rejects after `timeout` ms. */
  whenConnected(timeout = DEFAULT_TIMEOUT): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this._state === 'closed') return Promise.reject(new HeraldError('closed', 'client closed'));
    return new Promise((resolve, reject) => {
      const stop = [
        this.on('connected', () => done(() => resolve())),
        this.on('closed', () => done(() => reject(new HeraldError('closed', 'client closed')))),
      ];
      const timer = setTimeout(
        () => done(() => reject(new HeraldError('timeout', `not connected within ${timeout} ms`))),
        timeout,
      );
      const done = (settle: () => void) => {
        clearTimeout(timer);
        stop.forEach(off => off());
        settle();
      };
    });
  }

  /** Subscribes now if connected, and again after every reconnect, until `unsubscribe()`. */
  subscribe(
    destination: string,
    handler: (message: HeraldMessage) => void,
    options: SubscribeOptions = {},
  ): Subscription {
    const id = `${this.prefix}-s${this.seq++}`;
    const headers = { ...options.headers, ...(options.ack ? { ack: options.ack } : {}), id };
    const live: LiveSubscription = { id, destination, headers, handler };
    this.subscriptions.set(id, live);
    if (this.current && this.connected) this.attach(this.current, live);
    return {
      id,
      destination,
      unsubscribe: () => {
        if (!this.subscriptions.delete(id)) return;
        if (this.connected) live.stomp?.unsubscribe();
      },
    };
  }

  /**
   * Sends `body` (string, bytes, or JSON for anything else) to `destination`. Resolves on the
   * RECEIPT; rejects on an ERROR for it, on its timeout, or with `connection-lost` if the
   * connection ended before the RECEIPT (the broker may or may not have it). While
   * disconnected the publish waits in the bounded queue (`queue-full` when that is full).
   */
  publish(destination: string, body: Body, options: PublishOptions = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      const item: Outgoing = {
        destination,
        encoded: encodeBody(body, options.headers),
        receipt: options.receipt ?? true,
        timeout: options.timeout ?? this.options.receiptTimeout ?? DEFAULT_TIMEOUT,
        resolve,
        reject,
      };
      if (this._state === 'closed') {
        reject(new HeraldError('closed', 'client closed'));
      } else if (this.current && this.connected) {
        this.send(this.current, item);
      } else {
        this.queue.push(item);
      }
    });
  }

  /** `user('/queue/x')`: `/user/queue/x`. */
  user(destination: string): string {
    return user(destination);
  }

  /** Publishes to every session of user `name` subscribed to `user(destination)`. */
  sendToUser(
    name: string,
    destination: string,
    body: Body,
    options?: PublishOptions,
  ): Promise<void> {
    return this.publish(userDestination(name, destination), body, options);
  }

  /**
   * Sends `body` with `reply-to` (this session's reply queue) and a fresh `correlation-id`,
   * and resolves with the reply `serve` sends back; rejects on timeout or when the server's
   * handler threw (`request-failed`).
   */
  async request(
    destination: string,
    body: Body,
    options: RequestOptions = {},
  ): Promise<HeraldMessage> {
    const timeout = options.timeout ?? DEFAULT_TIMEOUT;
    const started = Date.now();
    // The reply address names this session, so it is only known once connected.
    await this.whenConnected(timeout);
    this.replySubscription ??= this.subscribe(user(REPLY_QUEUE), message => {
      const id = message.headers['correlation-id'];
      const waiting = id === undefined ? undefined : this.requests.get(id);
      if (!waiting) return;
      this.requests.delete(id!);
      if (message.headers[ERROR_HEADER] !== undefined) {
        waiting.reject(new HeraldError('request-failed', String(message.body)));
      } else {
        waiting.resolve(message);
      }
    });
    const correlationId = `${this.prefix}-c${this.seq++}`;
    const reply = new Promise<HeraldMessage>((resolve, reject) => {
      const remaining = Math.max(0, timeout - (Date.now() - started));
      const timer = setTimeout(() => {
        this.requests.delete(correlationId);
        reject(new HeraldError('timeout', `no reply from ${destination} within ${timeout} ms`));
      }, remaining);
      this.requests.set(correlationId, {
        resolve: m => (clearTimeout(timer), resolve(m)),
        reject: e => (clearTimeout(timer), reject(e)),
      });
    });
    const headers = {
      ...options.headers,
      'reply-to': userDestination(this._session!, REPLY_QUEUE),
      'correlation-id': correlationId,
    };
    this.publish(destination, body, { headers, receipt: false }).catch(error => {
      this.requests.get(correlationId)?.reject(error);
      this.requests.delete(correlationId);
    });
    return reply;
  }

  /**
   * Answers requests sent to `destination`: the handler's result (or promise) goes back to the
   * request's `reply-to` with its `correlation-id`; a handler that throws sends its message as
   * an error reply.
   */
  serve(
    destination: string,
    handler: (body: unknown, message: HeraldMessage) => unknown,
  ): Subscription {
    return this.subscribe(destination, async message => {
      const replyTo = message.headers['reply-to'];
      if (!replyTo) return;
      const headers: Record<string, string> = {};
      const correlationId = message.headers['correlation-id'];
      if (correlationId !== undefined) headers['correlation-id'] = correlationId;
      let reply: unknown;
      try {
        reply = await handler(message.body, message);
      } catch (error) {
        headers[ERROR_HEADER] = 'true';
        reply = error instanceof Error ? error.message : String(error);
      }
      await this.publish(replyTo, reply, { headers, receipt: false }).catch(() => {
        // The requester times out; nothing else can be told.
      });
    });
  }

  /** Disconnects and stops reconnecting; queued publishes and waiting requests are rejected. */
  async close(): Promise<void> {
    if (this._state === 'closed') return;
    this.setState('closed');
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.clearConnectTimer();
    const closed = new HeraldError('closed', 'client closed');
    this.queue.rejectAll(closed);
    for (const [id, waiting] of this.requests) {
      this.requests.delete(id);
      waiting.reject(closed);
    }
    const client = this.current;
    this.current = null;
    this.failReceipts(closed);
    if (client) await client.deactivate();
    this.events.emit('closed', undefined);
  }

  private setState(state: State): void {
    this._state = state;
  }

  private async open(): Promise<void> {
    const url = this.urls[this.urlIndex % this.urls.length]!;
    this.setState('connecting');
    this.events.emit('connecting', { url, attempt: this.attempt });
    let headers: Record<string, string>;
    let WebSocket: WebSocketClass;
    try {
      headers = await this.connectHeaders();
      WebSocket = await webSocketClass(this.options.WebSocket);
    } catch (error) {
      // A token that cannot be had counts as a failed attempt.
      this.events.emit('disconnected', { url, reason: String(error) });
      this.retry(false);
      return;
    }
    if (this._state === 'closed') return;
    const client = new Client({
      webSocketFactory: () => new WebSocket(url, SUBPROTOCOLS) as never,
      connectHeaders: headers,
      heartbeatIncoming: this.options.heartbeat?.incoming ?? 10000,
      heartbeatOutgoing: this.options.heartbeat?.outgoing ?? 10000,
      // Ours below: stompjs leaves its own watcher running after a failed attempt.
      connectionTimeout: 0,
      // Reconnects are ours: stompjs would retry on a fixed delay.
      reconnectDelay: 0,
      debug: () => {},
      ...this.options.stomp,
    });
    client.onConnect = frame => this.onConnected(client, url, frame);
    client.onStompError = frame => this.brokerError(frame);
    client.onWebSocketClose = event =>
      this.onClosed(client, url, event as { code?: number; reason?: string });
    this.current = client;
    client.activate();
    this.connectTimer = setTimeout(() => {
      // A connection not established in time is dropped; its close schedules the retry.
      if (client === this.current && !this.connected) client.forceDisconnect();
    }, this.options.connectTimeout ?? DEFAULT_TIMEOUT);
  }

  private clearConnectTimer(): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
  }

  private async connectHeaders(): Promise<Record<string, string>> {
    const headers: Record<string, string> = { ...this.options.connectHeaders };
    if (this.options.login !== undefined) headers.login = this.options.login;
    if (this.options.passcode !== undefined) headers.passcode = this.options.passcode;
    const token = this.options.getToken ? await this.options.getToken() : this.options.token;
    if (token !== undefined) headers.passcode = token;
    return headers;
  }

  private onConnected(client: Client, url: string, frame: IFrame): void {
    if (client !== this.current) return;
    this.clearConnectTimer();
    this.connectedAt = Date.now();
    this._session = frame.headers.session;
    this._user = frame.headers['user-name'];
    this.setState('connected');
    // Subscriptions first: a queued publish may be to a destination this client reads.
    for (const live of this.subscriptions.values()) this.attach(client, live);
    for (const item of this.queue.drain()) this.send(client, item);
    this.events.emit('connected', { url, session: this._session, user: this._user, frame });
  }

  private attach(client: Client, live: LiveSubscription): void {
    live.stomp = client.subscribe(
      live.destination,
      raw => {
        try {
          live.handler(this.message(raw));
        } catch (error) {
          // Thrown inside stompjs's frame parser it would cut the frames after it; report it
          // as an uncaught error of its own instead.
          queueMicrotask(() => {
            throw error;
          });
        }
      },
      live.headers,
    );
  }

  private message(raw: IMessage): HeraldMessage {
    return {
      destination: raw.headers.destination ?? '',
      headers: raw.headers,
      body: decodeBody(raw),
      bytes: raw.binaryBody,
      ack: headers => raw.ack(headers),
      nack: headers => raw.nack(headers),
    };
  }

  private send(client: Client, item: Outgoing): void {
    const headers = { ...item.encoded.headers };
    if (item.receipt) {
      const id = `${this.prefix}-r${this.seq++}`;
      headers.receipt = id;
      const timer = setTimeout(() => {
        this.receipts.delete(id);
        item.reject(
          new HeraldError(
            'timeout',
            `no RECEIPT for ${item.destination} within ${item.timeout} ms`,
          ),
        );
      }, item.timeout);
      this.receipts.set(id, { reject: item.reject, timer });
      client.watchForReceipt(id, () => {
        if (!this.receipts.delete(id)) return;
        clearTimeout(timer);
        item.resolve();
      });
    }
    const frame = item.encoded.binaryBody
      ? { destination: item.destination, headers, binaryBody: item.encoded.binaryBody }
      : { destination: item.destination, headers, body: item.encoded.body ?? '' };
    client.publish(frame);
    if (!item.receipt) item.resolve();
  }

  private brokerError(frame: IFrame): void {
    const message = frame.headers.message ?? 'ERROR';
    this.events.emit('error', { message, body: frame.body, frame });
    const receiptId = frame.headers['receipt-id'];
    const waiting = receiptId === undefined ? undefined : this.receipts.get(receiptId);
    if (waiting) {
      this.receipts.delete(receiptId!);
      clearTimeout(waiting.timer);
      waiting.reject(new HeraldError('broker-error', message, frame));
    }
  }

  private failReceipts(error: Error): void {
    for (const [id, waiting] of this.receipts) {
      clearTimeout(waiting.timer);
      this.receipts.delete(id);
      waiting.reject(error);
    }
  }

  private onClosed(client: Client, url: string, event: { code?: number; reason?: string }): void {
    if (client !== this.current) return;
    this.current = null;
    this.clearConnectTimer();
    const stable =
      this.connectedAt !== null &&
      this.backoff !== null &&
      Date.now() - this.connectedAt >= this.backoff.stableAfter;
    this.connectedAt = null;
    this.failReceipts(new HeraldError('connection-lost', 'connection lost before the RECEIPT'));
    this.setState('disconnected');
    this.events.emit('disconnected', { url, code: event?.code, reason: event?.reason });
    this.retry(stable);
  }

  private retry(stable: boolean): void {
    if (this._state === 'closed') return;
    if (this.backoff === null) {
      void this.close();
      return;
    }
    if (stable) this.attempt = 0;
    const delay = backoffDelay(this.backoff, this.attempt);
    this.attempt += 1;
    this.urlIndex += 1;
    this.setState('reconnecting');
    this.events.emit('reconnecting', { delay, attempt: this.attempt });
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.open();
    }, delay);
  }
}
