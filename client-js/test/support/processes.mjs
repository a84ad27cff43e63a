// Real brokers for the tests: herald (the debug build, or $HERALD_BIN) and nats-server, each on
// a free loopback port, stopped when the test ends. Every wait is bounded.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

const START_MS = 30000;

export function heraldBin() {
  if (process.env.HERALD_BIN) return process.env.HERALD_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache/herald-target');
  return join(target, 'debug/herald');
}

/** Starts `bin args`, resolving with the first match of `pattern` on its output. */
function startProcess(name, bin, args, pattern) {
  // RUST_LOG would override the configured level and could hide the `listening` lines.
  const { RUST_LOG: _, ...env } = process.env;
  const child = spawn(bin, args, {
    env: { ...env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${log}`)), START_MS);
    const scan = chunk => {
      log += chunk;
      const match = log.match(pattern);
      if (match) {
        clearTimeout(timer);
        resolve(match);
      }
    };
    child.stdout.on('data', scan);
    child.stderr.on('data', scan);
    child.on('exit', code => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before it was ready:\n${log}`));
    });
  });
  const exited = new Promise(resolve =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, ready, exited, log: () => log };
}

/**
 * A herald with `toml` as its configuration, WebSocket on `wsPort` (0: a free one), and with
 * `http` its operations listener too (`api` is then its base URL). Resolves to `{ url, port,
 * api, kill(), stop(), pause(), resume(), log() }`; `kill()` is SIGKILL (a crash), `stop()`
 * SIGTERM.
 */
export async function startHerald({ toml = '', wsPort = 0, args = [], http = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'herald-client-js-'));
  const config = join(dir, 'herald.toml');
  writeFileSync(config, `[log]\nlevel = "info"\nformat = "text"\n${toml}`);
  const proc = startProcess(
    'herald',
    heraldBin(),
    [
      ...['--config', config, '--ws-bind', `127.0.0.1:${wsPort}`, '--tcp-bind', '127.0.0.1:0'],
      ...(http ? ['--http-bind', '127.0.0.1:0'] : []),
      ...args,
    ],
    // The operations listener logs its address after the client listeners.
    http
      ? /listening transport="websocket" addr=\S+:(\d+)[\s\S]*http: serving[^\n]*addr=\S+:(\d+)/
      : /listening transport="websocket" addr=\S+:(\d+)/,
  );
  const [, port, httpPort] = await proc.ready;
  const stop = async signal => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill(signal);
    return proc.exited;
  };
  return {
    port: Number(port),
    url: `ws://127.0.0.1:${port}/ws`,
    origin: `http://127.0.0.1:${port}`,
    api: httpPort && `http://127.0.0.1:${httpPort}`,
    kill: () => stop('SIGKILL'),
    /** SIGSTOP, resolved once the process is stopped: it answers nothing until `resume()`. */
    pause: async () => {
      proc.child.kill('SIGSTOP');
      // The signal takes effect asynchronously, thread by thread; /proc shows each one's T.
      const tasks = `/proc/${proc.child.pid}/task`;
      const stopped = tid =>
        readFileSync(`${tasks}/${tid}/stat`, 'utf8').split(') ')[1]?.startsWith('T');
      await waitFor('every herald thread to stop', () => readdirSync(tasks).every(stopped));
    },
    resume: () => proc.child.kill('SIGCONT'),
    stop: () => stop('SIGTERM'),
    log: proc.log,
  };
}

/**
 * `startHerald` on a port below Linux's ephemeral range (32768 and up), for tests that restart
 * the broker on its port: while it is down, the clients' own connection attempts take source
 * ports from that range and could take its port. Tries random ports until one is free.
 */
export async function startHeraldOnFixedPort(options = {}) {
  for (let tries = 0; ; tries++) {
    const wsPort = 20000 + Math.floor(Math.random() * 12000);
    try {
      return await startHerald({ ...options, wsPort });
    } catch (error) {
      if (tries >= 20 || !/address already in use|Address in use|AddrInUse/i.test(error.message))
        throw error;
    }
  }
}

export function natsBin() {
  return process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';
}

/** A nats-server on a free loopback port: `{ url, stop() }`. */
export async function startNats() {
  const proc = startProcess(
    'nats-server',
    natsBin(),
    ['-a', '127.0.0.1', '-p', '-1'],
    /Listening for client connections on ([0-9.]+:\d+)/,
  );
  const [, addr] = await proc.ready;
  return {
    url: `nats://${addr}`,
    stop: async () => {
      if (proc.child.exitCode === null) proc.child.kill('SIGTERM');
      return proc.exited;
    },
  };
}

/** Resolves when `predicate()` holds, checking on every `event` of `client`; rejects after `ms`. */
export function waitFor(what, predicate, ms = 10000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = () => {
      let value;
      try {
        value = predicate();
      } catch (error) {
        reject(error);
        return;
      }
      if (value) resolve(value);
      else if (Date.now() - started > ms)
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      else setTimeout(check, 10);
    };
    check();
  });
}

/** The next `event` from `client`, within `ms`. */
export function nextEvent(client, event, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${ms} ms waiting for ${event}`));
    }, ms);
    const off = client.on(event, value => {
      clearTimeout(timer);
      off();
      resolve(value);
    });
  });
}

/** A queue of received values with a bounded `next()`. */
export class Inbox {
  items = [];
  waiters = [];
  push = item => {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
  };
  next(ms = 10000) {
    if (this.items.length > 0) return Promise.resolve(this.items.shift());
    return new Promise((resolve, reject) => {
      const waiter = item => {
        clearTimeout(timer);
        resolve(item);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter(w => w !== waiter);
        reject(new Error(`timed out after ${ms} ms waiting for a message`));
      }, ms);
      this.waiters.push(waiter);
    });
  }
}

/** An HS256 JWT for `sub` signed with `secret`, valid for five minutes. */
export async function hs256(secret, sub) {
  const { createHmac } = await import('node:crypto');
  const part = value => Buffer.from(JSON.stringify(value)).toString('base64url');
  const exp = Math.floor(Date.now() / 1000) + 300;
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, exp })}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

/** A destination no other test uses. */
let unique = 0;
export function uniqueName(name) {
  return `${name}-${process.pid}-${unique++}-${Math.random().toString(36).slice(2, 8)}`;
}
