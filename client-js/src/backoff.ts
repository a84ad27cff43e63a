/** Reconnect timing: exponential backoff with full jitter. */

export interface ReconnectOptions {
  /** Width of the first window, in ms: the first retry waits a random time in [0, minDelay]. */
  minDelay?: number;
  /** Largest window, in ms: no retry waits longer. */
  maxDelay?: number;
  /**
   * A connection that stayed up this long (ms) resets the backoff, so the next outage starts
   * from the first window again. Default: `maxDelay`.
   */
  stableAfter?: number;
}

export interface Backoff {
  minDelay: number;
  maxDelay: number;
  stableAfter: number;
}

export const DEFAULT_MIN_DELAY = 1000;
export const DEFAULT_MAX_DELAY = 30000;

/** The options with their defaults; throws on values that make no schedule. */
export function backoffOf(options: ReconnectOptions = {}): Backoff {
  const minDelay = options.minDelay ?? DEFAULT_MIN_DELAY;
  const maxDelay = options.maxDelay ?? Math.max(DEFAULT_MAX_DELAY, minDelay);
  const stableAfter = options.stableAfter ?? maxDelay;
  if (!(minDelay > 0) || !(maxDelay >= minDelay) || !(stableAfter >= 0)) {
    throw new RangeError(
      `reconnect needs 0 < minDelay <= maxDelay and stableAfter >= 0 (got ${minDelay}, ${maxDelay}, ${stableAfter})`,
    );
  }
  return { minDelay, maxDelay, stableAfter };
}

/** The window of retry `attempt` (0 for the first): min(maxDelay, minDelay * 2^attempt). */
export function backoffWindow(backoff: Backoff, attempt: number): number {
  // 2^attempt overflows to Infinity for large attempts, which min() caps.
  return Math.min(backoff.maxDelay, backoff.minDelay * 2 ** attempt);
}

/**
 * How long retry `attempt` waits: uniformly random in [0, window]. Full jitter spreads the
 * clients a broker restart dropped all at once over the whole window instead of bringing
 * them back in the same instant.
 */
export function backoffDelay(
  backoff: Backoff,
  attempt: number,
  random: () => number = Math.random,
): number {
  return Math.floor(random() * (backoffWindow(backoff, attempt) + 1));
}
