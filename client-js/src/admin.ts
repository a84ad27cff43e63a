/**
 * `HeraldAdmin`: what a Node service does to a Herald deployment. Herald's HTTP API is not
 * there yet, so today's transport is STOMP (a service session); the calls only STOMP cannot
 * make are rejected with `not-supported`. An HTTP transport can replace `StompAdminTransport`
 * behind the same interface.
 */

import type { Body } from './body.js';
import { type ConnectOptions, type HeraldClient, connect } from './client.js';
import { HeraldError } from './errors.js';

export interface Presence {
  user: string;
  sessions: number;
}

/** What an admin transport provides; the HTTP API will be a second implementation. */
export interface AdminTransport {
  publish(destination: string, body: Body, headers?: Record<string, string>): Promise<void>;
  sendToUser(name: string, destination: string, body: Body, headers?: Record<string, string>): Promise<void>;
  disconnectUser(name: string): Promise<void>;
  presence(name?: string): Promise<Presence[]>;
  stats(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

/** The admin calls over a STOMP session (every publish confirmed by RECEIPT). */
export class StompAdminTransport implements AdminTransport {
  readonly client: HeraldClient;

  constructor(options: ConnectOptions) {
    this.client = connect(options);
  }

  publish(destination: string, body: Body, headers?: Record<string, string>): Promise<void> {
    return this.client.publish(destination, body, { headers });
  }

  sendToUser(name: string, destination: string, body: Body, headers?: Record<string, string>): Promise<void> {
    return this.client.sendToUser(name, destination, body, { headers });
  }

  disconnectUser(): Promise<void> {
    return notOverStomp('disconnectUser');
  }

  presence(): Promise<Presence[]> {
    return notOverStomp('presence');
  }

  stats(): Promise<Record<string, number>> {
    return notOverStomp('stats');
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

function notOverStomp(what: string): Promise<never> {
  return Promise.reject(
    new HeraldError('not-supported', `${what} needs Herald's HTTP API, which this broker does not have yet`),
  );
}

export class HeraldAdmin {
  constructor(readonly transport: AdminTransport) {}

  /** An admin that speaks STOMP as the service user of `options`. */
  static overStomp(options: ConnectOptions): HeraldAdmin {
    return new HeraldAdmin(new StompAdminTransport(options));
  }

  publish(destination: string, body: Body, headers?: Record<string, string>): Promise<void> {
    return this.transport.publish(destination, body, headers);
  }

  /** To every session of user `name` subscribed to `/user` + `destination`. */
  sendToUser(name: string, destination: string, body: Body, headers?: Record<string, string>): Promise<void> {
    return this.transport.sendToUser(name, destination, body, headers);
  }

  /** To every subscriber of a topic. */
  broadcast(topic: string, body: Body, headers?: Record<string, string>): Promise<void> {
    if (!topic.startsWith('/topic/')) {
      return Promise.reject(new TypeError(`broadcast goes to a /topic/ destination, not ${topic}`));
    }
    return this.transport.publish(topic, body, headers);
  }

  disconnectUser(name: string): Promise<void> {
    return this.transport.disconnectUser(name);
  }

  presence(name?: string): Promise<Presence[]> {
    return this.transport.presence(name);
  }

  stats(): Promise<Record<string, number>> {
    return this.transport.stats();
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}
