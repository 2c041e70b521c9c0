/** A logger that drops everything; for tests that do not look at logs. */
import { createLogger, type Logger } from '../../shared/log.ts';

export const silentLogger: Logger = createLogger({}, { sink: () => undefined, level: 'error' });
