/**
 * Waits `ms`, or less when `signal` aborts: it then resolves (it never rejects), so that loops stop at their own check
 * of the signal; callers that want the abort as an error call `signal.throwIfAborted()` after it.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
