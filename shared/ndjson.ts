/** A line longer than the reader allows: the peer is broken or hostile, and the stream is dropped. */
export class LineTooLongError extends Error {
  readonly code = 'LineTooLong';

  constructor(limit: number) {
    super(`a line is longer than ${limit} bytes`);
    this.name = 'LineTooLongError';
  }
}

/** Default bound on one line: far above a snapshot of a thousand volumes (about 1 MiB), far below memory trouble. */
export const DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024;

/**
 * Newline-delimited JSON streams (Kubernetes watches, the agent's change stream): the non-empty lines of a body. A line
 * longer than `maxLineBytes` (counted in characters, as decoded) throws LineTooLongError instead of growing for ever.
 */
export async function* ndjsonLines(body: AsyncIterable<Uint8Array>, maxLineBytes = DEFAULT_MAX_LINE_BYTES): AsyncGenerator<string, void, undefined> {
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of body) {
    pending += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      if (newline > maxLineBytes) throw new LineTooLongError(maxLineBytes);
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (line) yield line;
    }
    if (pending.length > maxLineBytes) throw new LineTooLongError(maxLineBytes);
  }
}
