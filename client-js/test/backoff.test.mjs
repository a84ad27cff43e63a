// Backoff with full jitter: bounds per attempt, the distribution inside a window, the cap.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { backoffDelay, backoffOf, backoffWindow } from '../dist/esm/index.js';

test('windows double from minDelay up to maxDelay', () => {
  const backoff = backoffOf({ minDelay: 500, maxDelay: 8000 });
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 60, 5000].map(a => backoffWindow(backoff, a)),
    [500, 1000, 2000, 4000, 8000, 8000, 8000, 8000],
  );
  assert.equal(backoff.stableAfter, 8000, 'stableAfter defaults to maxDelay');
});

test('a delay lies within [0, window] whatever the random source gives', () => {
  const backoff = backoffOf({ minDelay: 1000, maxDelay: 4000 });
  for (const attempt of [0, 1, 2, 3, 10]) {
    const window = backoffWindow(backoff, attempt);
    assert.equal(
      backoffDelay(backoff, attempt, () => 0),
      0,
    );
    assert.equal(
      backoffDelay(backoff, attempt, () => 0.999999999),
      window,
    );
    for (let i = 0; i < 1000; i++) {
      const delay = backoffDelay(backoff, attempt);
      assert.ok(
        delay >= 0 && delay <= window && Number.isInteger(delay),
        `${delay} in [0, ${window}]`,
      );
    }
  }
});

test('delays are spread uniformly over the window (full jitter)', () => {
  const backoff = backoffOf({ minDelay: 1000, maxDelay: 30000 });
  const n = 20000;
  const buckets = new Array(10).fill(0);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const delay = backoffDelay(backoff, 0);
    sum += delay;
    buckets[Math.min(9, Math.floor(delay / 100))] += 1;
  }
  // Each tenth of the window holds ~10%; 4 standard deviations (~0.85%) apart is a bug.
  for (const [i, count] of buckets.entries()) {
    const share = count / n;
    assert.ok(Math.abs(share - 0.1) < 0.02, `tenth ${i} holds ${(share * 100).toFixed(1)}%`);
  }
  assert.ok(Math.abs(sum / n - 500) < 15, `mean ${sum / n} near 500`);
});

test('options that make no schedule are refused', () => {
  assert.throws(() => backoffOf({ minDelay: 0 }), RangeError);
  assert.throws(() => backoffOf({ minDelay: 2000, maxDelay: 1000 }), RangeError);
  assert.throws(() => backoffOf({ minDelay: Number.NaN }), RangeError);
  assert.throws(() => backoffOf({ stableAfter: -1 }), RangeError);
  assert.equal(backoffOf({ minDelay: 60000 }).maxDelay, 60000, 'maxDelay follows a large minDelay');
});
