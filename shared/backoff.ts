/** Retry delays after consecutive failures (watches, streams, API calls), jittered so that retries spread out. */

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/** The delay for the n-th consecutive failure (n >= 1), without jitter: min(max, initial x 2^(n-1)). */
export function exponentialDelay(backoff: Backoff, failures: number): number {
  return Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.max(0, failures - 1));
}

/** Jittered exponential delay for the n-th consecutive failure (n >= 1): between half and all of min(max, initial x 2^(n-1)). */
export function backoffDelay(backoff: Backoff, failures: number, random: () => number = Math.random): number {
  const ceiling = exponentialDelay(backoff, failures);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Retries of watches and streams: from 0.5 s, doubling, at most 30 s. */
export const retryBackoff: Backoff = { initialMs: 500, maxMs: 30_000 };
