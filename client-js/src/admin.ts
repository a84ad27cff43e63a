/**
 * `HeraldAdmin`: what a Node service does to a Herald deployment, through an `AdminTransport`:
 * Herald's HTTP API (`HeraldAdmin.overHttp`, every call), or a STOMP session
 * (`HeraldAdmin.overStomp`, for brokers without the API: publishing only).
 */

import { type Body, encodeBody } from './body.js';
import { type ConnectOptions, type HeraldClient, connect } from './client.js';
import { HeraldError } from './errors.js';

export interface Presence {
  user: string;
  sessions: number;
}

/** What the broker says of a delivery, where the transport can tell (the HTTP API). */
export interface Delivery {
  /** Subscriptions on the answering node that got the message. */
  matched: number;
  /** The cluster link took it for the other nodes. */
  forwarded: boolean;
}

type Headers = Record<string, string>;

/** What an admin transport provides. */
export interface AdminTransport {
  publish(destination: string, body: Body, headers?: Headers): Promise<Delivery | undefined>;
  sendToUser(
    name: string,
    destination: string,
    body: Body,
    headers?: Headers,
  ): Promise<Delivery | undefined>;
  broadcast(destinations: string[], body: Body, headers?: Headers): Promise<Delivery | undefined>;
  /** Closes the user's sessions (on the answering node); resolves to how many. */
  disconnectUser(name: string, reason?: string): Promise<number>;
  /** Users online and their session counts; one user, or everyone. */
  presence(name?: string): Promise<Presence[]>;
  stats(): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/** Over a STOMP session: publishes confirmed by RECEIPT; the rest needs the HTTP API. */
export class StompAdminTransport implements AdminTransport {
  readonly client: HeraldClient;

  constructor(options: ConnectOptions) {
    this.client = connect(options);
  }

  async publish(destination: string, body: Body, headers?: Headers): Promise<undefined> {
    await this.client.publish(destination, body, { headers });
    return undefined;
  }

  async sendToUser(
    name: string,
    destination: string,
    body: Body,
    headers?: Headers,
  ): Promise<undefined> {
    await this.client.sendToUser(name, destination, body, { headers });
    return undefined;
  }

  async broadcast(destinations: string[], body: Body, headers?: Headers): Promise<undefined> {
    await Promise.all(
      destinations.map(destination => this.client.publish(destination, body, { headers })),
    );
    return undefined;
  }

  disconnectUser(): Promise<number> {
    return notOverStomp('disconnectUser');
  }

  presence(): Promise<Presence[]> {
    return notOverStomp('presence');
  }

  stats(): Promise<Record<string, unknown>> {
    return notOverStomp('stats');
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

function notOverStomp(what: string): Promise<never> {
  return Promise.reject(
    new HeraldError('not-supported', `${what} needs Herald's HTTP API (HeraldAdmin.overHttp)`),
  );
}

export interface HttpAdminOptions {
  /** The operations listener, e.g. `http://127.0.0.1:15692` (`/api/v1` is added). */
  url: string;
  /** A key of `[[http.api_keys]]`, sent as `Authorization: Bearer`. */
  apiKey: string;
  /** Per-request timeout in ms. Default 10000. */
  timeout?: number;
  /** The fetch implementation (default: the global one). */
  fetch?: typeof fetch;
}

/** Over Herald's HTTP API (`/api/v1`, docs/api.md). */
export class HttpAdminTransport implements AdminTransport {
  private readonly base: string;

  constructor(private readonly options: HttpAdminOptions) {
    this.base = `${options.url.replace(/\/+$/, '')}/api/v1`;
  }

  async publish(destination: string, body: Body, headers?: Headers): Promise<Delivery> {
    return delivery(
      await this.call('POST', '/publish', { destination, ...message(body, headers) }),
    );
  }

  async sendToUser(
    name: string,
    destination: string,
    body: Body,
    headers?: Headers,
  ): Promise<Delivery> {
    return delivery(
      await this.call('POST', `/users/${encodeURIComponent(name)}/send`, {
        destination,
        ...message(body, headers),
      }),
    );
  }

  async broadcast(destinations: string[], body: Body, headers?: Headers): Promise<Delivery> {
    const answer = await this.call('POST', '/broadcast', {
      destinations,
      ...message(body, headers),
    });
    const each = (answer.destinations as Delivery[] | undefined) ?? [];
    return { matched: Number(answer.matched ?? 0), forwarded: each.some(d => d.forwarded) };
  }

  async disconnectUser(name: string, reason?: string): Promise<number> {
    try {
      const answer = await this.call(
        'DELETE',
        `/users/${encodeURIComponent(name)}/sessions`,
        reason === undefined ? undefined : { reason },
      );
      return Number(answer.disconnected ?? 0);
    } catch (error) {
      // 404: the user has no session; nothing to close.
      if (error instanceof HeraldError && error.status === 404) return 0;
      throw error;
    }
  }

  async presence(name?: string): Promise<Presence[]> {
    if (name === undefined) {
      const users = ((await this.call('GET', '/presence')).users ?? {}) as Record<string, number>;
      return Object.entries(users).map(([user, sessions]) => ({ user, sessions }));
    }
    try {
      const answer = await this.call('GET', `/users/${encodeURIComponent(name)}`);
      return [{ user: String(answer.user), sessions: Number(answer.sessions) }];
    } catch (error) {
      if (error instanceof HeraldError && error.status === 404) return [];
      throw error;
    }
  }

  stats(): Promise<Record<string, unknown>> {
    return this.call('GET', '/stats');
  }

  async close(): Promise<void> {}

  private async call(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<Record<string, unknown>> {
    const fetcher = this.options.fetch ?? globalThis.fetch;
    const timeout = this.options.timeout ?? 10000;
    let response: Response;
    try {
      response = await fetcher(`${this.base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.options.apiKey}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeout),
      });
    } catch (error) {
      const timedOut = error instanceof Error && error.name === 'TimeoutError';
      throw new HeraldError(
        timedOut ? 'timeout' : 'connection-lost',
        `${method} ${path}: ${String(error)}`,
      );
    }
    const text = await response.text();
    let answer: Record<string, unknown> = {};
    try {
      answer = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      // Not JSON: only the status speaks.
    }
    if (!response.ok) {
      const reason = answer.message ?? answer.error ?? response.statusText;
      throw new HeraldError(
        'api-error',
        `${method} ${path}: HTTP ${response.status}: ${String(reason)}`,
        undefined,
        response.status,
      );
    }
    return answer;
  }
}

/** A body as the API takes it: text in `body`, bytes in `body_base64`, JSON as text. */
function message(body: Body, headers?: Headers): Record<string, unknown> {
  const encoded = encodeBody(body, headers);
  const out: Record<string, unknown> = {};
  if (Object.keys(encoded.headers).length > 0) out.headers = encoded.headers;
  if (encoded.binaryBody) out.body_base64 = base64(encoded.binaryBody);
  else if (encoded.body) out.body = encoded.body;
  return out;
}

function base64(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function delivery(answer: Record<string, unknown>): Delivery {
  return { matched: Number(answer.matched ?? 0), forwarded: Boolean(answer.forwarded) };
}

export class HeraldAdmin {
  constructor(readonly transport: AdminTransport) {}

  /** An admin on Herald's HTTP API with key `apiKey`. */
  static overHttp(options: HttpAdminOptions): HeraldAdmin {
    return new HeraldAdmin(new HttpAdminTransport(options));
  }

  /** An admin that speaks STOMP as the service user of `options` (publishing only). */
  static overStomp(options: ConnectOptions): HeraldAdmin {
    return new HeraldAdmin(new StompAdminTransport(options));
  }

  publish(destination: string, body: Body, headers?: Headers): Promise<Delivery | undefined> {
    return this.transport.publish(destination, body, headers);
  }

  /** To every session of user `name` subscribed to `/user` + `destination`. */
  sendToUser(
    name: string,
    destination: string,
    body: Body,
    headers?: Headers,
  ): Promise<Delivery | undefined> {
    return this.transport.sendToUser(name, destination, body, headers);
  }

  /** To every subscriber of one topic, or of several at once. */
  broadcast(
    topics: string | string[],
    body: Body,
    headers?: Headers,
  ): Promise<Delivery | undefined> {
    const destinations = Array.isArray(topics) ? topics : [topics];
    const bad = destinations.find(d => !d.startsWith('/topic/'));
    if (bad !== undefined || destinations.length === 0) {
      return Promise.reject(
        new TypeError(`broadcast goes to /topic/ destinations, not ${bad ?? 'none'}`),
      );
    }
    return this.transport.broadcast(destinations, body, headers);
  }

  disconnectUser(name: string, reason?: string): Promise<number> {
    return this.transport.disconnectUser(name, reason);
  }

  presence(name?: string): Promise<Presence[]> {
    return this.transport.presence(name);
  }

  stats(): Promise<Record<string, unknown>> {
    return this.transport.stats();
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}
