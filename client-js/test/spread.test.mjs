// 1,000 clients dropped at once by a broker restart come back spread over the backoff window,
// not in one instant. Measured from the clients' own recorded times, not wall-clock bounds.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { connect } from '../dist/esm/index.js';
import { startHerald, startHeraldOnFixedPort } from './support/processes.mjs';

const CLIENTS = Number(process.env.SPREAD_CLIENTS ?? 1000);
const WINDOW_MS = 2000;

/** Per cent of `values` below `limit`. */
const shareBelow = (values, limit) => (100 * values.filter(v => v < limit).length) / values.length;
const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

test(
  `${CLIENTS} clients reconnecting after a restart spread over the backoff window`,
  { timeout: 180000 },
  async () => {
    let herald = await startHeraldOnFixedPort();
    const clients = [];
    // Per client: when the broker dropped it, its first new attempt, and when it was back.
    const dropped = new Map();
    const attempted = new Map();
    const back = new Map();
    const scheduled = new Map();
    try {
      for (let i = 0; i < CLIENTS; i++) {
        const client = connect({
          url: herald.url,
          heartbeat: { incoming: 0, outgoing: 0 },
          reconnect: { minDelay: WINDOW_MS, maxDelay: 4 * WINDOW_MS },
        });
        clients.push(client);
        client.on(
          'disconnected',
          () => dropped.has(client) || dropped.set(client, performance.now()),
        );
        client.on(
          'connecting',
          () =>
            dropped.has(client) &&
            !attempted.has(client) &&
            attempted.set(client, performance.now()),
        );
        client.on(
          'reconnecting',
          ({ delay }) => scheduled.has(client) || scheduled.set(client, delay),
        );
        client.on('connected', () => dropped.has(client) && back.set(client, performance.now()));
        // A few at a time, so the first connections are no stampede of their own.
        if (i % 50 === 49) await Promise.all(clients.slice(-50).map(c => c.whenConnected(30000)));
      }
      await Promise.all(clients.map(c => c.whenConnected(30000)));

      const killedAt = performance.now();
      await herald.kill();
      herald = await startHerald({ wsPort: herald.port });
      const restartedAt = performance.now();
      await Promise.all(clients.map(c => c.whenConnected(60000)));

      const delays = clients.map(c => attempted.get(c) - dropped.get(c)).sort((x, y) => x - y);
      // From the first client back: when this process saw the restart finish is later than when
      // the broker could accept, by however busy the machine is.
      const firstBack = Math.min(...clients.map(c => back.get(c)));
      const backAfterFirst = clients.map(c => back.get(c) - firstBack).sort((x, y) => x - y);
      const figures = {
        clients: CLIENTS,
        windowMs: WINDOW_MS,
        restartMs: Math.round(restartedAt - killedAt),
        firstAttemptMs: {
          p10: quantile(delays, 0.1),
          p50: quantile(delays, 0.5),
          p90: quantile(delays, 0.9),
          max: delays.at(-1),
        },
        firstAttemptsInFirst100msPct: shareBelow(delays, 100),
        connectedAfterFirstMs: {
          p10: quantile(backAfterFirst, 0.1),
          p50: quantile(backAfterFirst, 0.5),
          p90: quantile(backAfterFirst, 0.9),
          max: backAfterFirst.at(-1),
        },
        connectedInFirst100msPct: shareBelow(backAfterFirst, 100),
      };
      const round = value => (typeof value === 'number' ? Math.round(value * 10) / 10 : value);
      console.log(`reconnect spread: ${JSON.stringify(figures, (_, v) => round(v))}`);

      // Full jitter puts ~5% of first attempts in the first 100 ms of a 2 s window; a fixed
      // delay would put all of them in one instant.
      assert.ok(
        figures.firstAttemptsInFirst100msPct < 15,
        `${figures.firstAttemptsInFirst100msPct}% attempted within 100 ms`,
      );
      assert.ok(
        figures.firstAttemptMs.p90 - figures.firstAttemptMs.p10 > WINDOW_MS / 2,
        'attempts cover most of the window',
      );
      // The delays as drawn (timers on a busy machine only fire later than them).
      assert.ok(
        clients.every(c => scheduled.get(c) >= 0 && scheduled.get(c) <= WINDOW_MS),
        'drawn within the window',
      );
      // Looser: clients that reached the port while the broker was still starting are accepted
      // together, more of them the slower the start (~5-9% measured on a quiet machine).
      assert.ok(
        figures.connectedInFirst100msPct < 30,
        `${figures.connectedInFirst100msPct}% back within 100 ms of the first`,
      );
    } finally {
      await Promise.all(clients.map(c => c.close()));
      await herald.stop();
    }
  },
);
