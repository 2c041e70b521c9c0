/**
 * Structured JSON-lines logging. A logger carries bound fields (component, namespace, cluster, pvc, ...) so that every line
 * about a volume can be found by the same keys. Errors go under `err` with their code.
 */
import { errorCode } from './errors.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;
export type LogSink = (line: string) => void;

const levelRank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  sink?: LogSink;
  clock?: () => Date;
}

function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  return { code: errorCode(err), message: err.message, name: err.name, stack: err.stack };
}

export function createLogger(bound: LogFields = {}, options: LoggerOptions = {}): Logger {
  const minRank = levelRank[options.level ?? 'info'];
  const sink: LogSink = options.sink ?? ((line) => process.stderr.write(line + '\n'));
  const clock = options.clock ?? (() => new Date());

  const write = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (levelRank[level] < minRank) return;
    const record: LogFields = { ts: clock().toISOString(), level, msg, ...bound, ...fields };
    if ('err' in record) record.err = serializeError(record.err);
    sink(JSON.stringify(record));
  };

  return {
    debug: (msg, fields) => { write('debug', msg, fields); },
    info: (msg, fields) => { write('info', msg, fields); },
    warn: (msg, fields) => { write('warn', msg, fields); },
    error: (msg, fields) => { write('error', msg, fields); },
    child: (fields) => createLogger({ ...bound, ...fields }, options),
  };
}
