/** Errors of `kubectl cnpg storage simulate`: a stable code each (tests and scripts rely on them), a message for people. */
import { DynamicStorageError } from '../shared/errors.ts';

export const SimulateErrorCodes = {
  // The trace file.
  EmptyTrace: 'EmptyTrace',
  InvalidTraceHeader: 'InvalidTraceHeader',
  InvalidTraceRow: 'InvalidTraceRow',
  InvalidTimestamp: 'InvalidTimestamp',
  InvalidUsedBytes: 'InvalidUsedBytes',
  InvalidInstance: 'InvalidInstance',
  TraceOutOfOrder: 'TraceOutOfOrder',
  TraceTooShort: 'TraceTooShort',
  // The policy file.
  NoPolicy: 'NoPolicy',
  PolicyNotParsed: 'PolicyNotParsed',
  SeveralPolicies: 'SeveralPolicies',
  InvalidPolicy: 'InvalidPolicy',
  VolumeNotManaged: 'VolumeNotManaged',
  // Prometheus.
  PrometheusUnreachable: 'PrometheusUnreachable',
  PrometheusHttpError: 'PrometheusHttpError',
  PrometheusQueryFailed: 'PrometheusQueryFailed',
  PrometheusNoData: 'PrometheusNoData',
} as const;
export type SimulateErrorCode = (typeof SimulateErrorCodes)[keyof typeof SimulateErrorCodes];

/** The input of a simulation (trace, policy, history source) cannot be used; exit status 1. */
export class SimulateInputError extends DynamicStorageError {
  /** 1-based line of the trace file the error is about, when it is about one. */
  readonly line: number | undefined;

  constructor(code: SimulateErrorCode, message: string, options?: { line?: number | undefined; cause?: unknown }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SimulateInputError';
    this.line = options?.line;
  }

  /** The same error, its message prefixed with the file it is about. */
  in(source: string): SimulateInputError {
    return new SimulateInputError(this.code as SimulateErrorCode, `${source}: ${this.message}`, { line: this.line, cause: this.cause });
  }
}
