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
