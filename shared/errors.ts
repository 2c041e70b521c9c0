import { isObject } from './objects.ts';

/**
 * Errors with a stable machine-readable code. Codes are part of the product's contract: they appear in logs, events and
 * conditions, and tests assert them, so never change an existing one.
 */
export class DynamicStorageError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DynamicStorageError';
    this.code = code;
  }
}

/** Invalid user input (a policy, a quantity, a schedule). Never retried. */
export class InvalidInputError extends DynamicStorageError {
  readonly field: string;

  constructor(code: string, field: string, message: string) {
    super(code, `${field}: ${message}`);
    this.name = 'InvalidInputError';
    this.field = field;
  }
}

export function errorCode(err: unknown): string {
  if (err instanceof DynamicStorageError) return err.code;
  if (err instanceof Error && 'code' in err && typeof err.code === 'string') return err.code;
  return 'Unknown';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The status code and Status of an API server error: a client-node ApiException, or anything shaped like one. */
interface ApiStatus {
  code: number;
  reason?: string | undefined;
  message?: string | undefined;
  /** The body, when it was text that is not JSON. */
  text?: string | undefined;
}

/** Matched by shape (a numeric `code` and a `body`), so that modules without client-node (the agent) can use it. */
function apiStatusOf(err: unknown): ApiStatus | undefined {
  if (!(err instanceof Error) || !('code' in err) || typeof err.code !== 'number' || !('body' in err)) return undefined;
  let body: unknown = err.body;
  if (typeof body === 'string') {
    const text = body;
    try {
      body = JSON.parse(text);
    } catch {
      return { code: err.code, text };
    }
  }
  const status = isObject(body) ? body : {};
  return {
    code: err.code,
    reason: typeof status.reason === 'string' ? status.reason : undefined,
    message: typeof status.message === 'string' ? status.message : undefined,
  };
}

/** The HTTP status of an API server error, or undefined for anything else. */
export function apiStatusCode(err: unknown): number | undefined {
  return apiStatusOf(err)?.code;
}

/** True for an API server error with one of these HTTP statuses. */
export function isApiCode(err: unknown, ...codes: number[]): boolean {
  const code = apiStatusCode(err);
  return code !== undefined && codes.includes(code);
}

/** The API server's own message (`... "pg" is forbidden: ...`), else `HTTP <code>`; the error's message for other errors. */
export function apiErrorMessage(err: unknown): string {
  const status = apiStatusOf(err);
  if (!status) return errorMessage(err);
  return status.message ?? `HTTP ${status.code}`;
}

/** `HTTP 403 Forbidden: <message>` (or `HTTP <code>: <body>`), for people reading a command's output; undefined for other errors. */
export function apiErrorDetail(err: unknown): string | undefined {
  const status = apiStatusOf(err);
  if (!status) return undefined;
  if (status.text !== undefined) return `HTTP ${status.code}${status.text ? `: ${status.text}` : ''}`;
  return `HTTP ${status.code}${status.reason ? ` ${status.reason}` : ''}${status.message ? `: ${status.message}` : ''}`;
}

/** A write lost to a concurrent one (HTTP 409): the next attempt reads the newer object, so it is retried at once. */
export class ConflictError extends DynamicStorageError {
  constructor(message: string, options?: { cause?: unknown }, code = 'Conflict') {
    super(code, message, options);
    this.name = 'ConflictError';
  }
}

/** The API server failed or is overloaded (5xx, 429): retried with backoff. */
export class TransientApiError extends DynamicStorageError {
  readonly status: number;

  constructor(status: number, message: string, options?: { cause?: unknown }) {
    super('TransientApiError', message, options);
    this.name = 'TransientApiError';
    this.status = status;
  }
}

/**
 * The typed error for a failed API write of `what`: ConflictError for 409, TransientApiError for 429 and 5xx; any other
 * error is returned as it is.
 */
export function apiWriteError(err: unknown, what: string): unknown {
  const code = apiStatusCode(err);
  if (code === 409) return new ConflictError(`${what}: ${apiErrorMessage(err)}`, { cause: err });
  if (code !== undefined && (code === 429 || code >= 500)) return new TransientApiError(code, `${what}: ${apiErrorMessage(err)}`, { cause: err });
  return err;
}
