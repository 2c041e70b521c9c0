/** Rendering of sizes, percentages and times in decision messages. Messages are for people; never parse them. */
import { MiB, formatBytesHuman, formatQuantity } from '../../shared/quantity.ts';
import { isoTime } from '../../shared/time.ts';

/** A PVC size: exact quantity when it is a whole number of MiB (`10Gi`, `1536Mi`), else one decimal (`10.3Gi`). */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes)) return 'unbounded';
  return Number.isSafeInteger(bytes) && bytes % MiB === 0 ? formatQuantity(bytes) : formatBytesHuman(bytes);
}

/** A measured amount of data (`4.2Gi`). */
export function formatUsage(bytes: number): string {
  return formatBytesHuman(Math.round(bytes));
}

export function formatPercent(percent: number): string {
  return `${(Math.floor(percent * 10) / 10).toFixed(1)}%`;
}

/** `percent` said to be above `threshold`: with two decimals when one would show them equal ("80.03%", not "80.0%"). */
export function formatPercentAbove(percent: number, threshold: number): string {
  const shown = formatPercent(percent);
  return shown === formatPercent(threshold) ? `${(Math.floor(percent * 100) / 100).toFixed(2)}%` : shown;
}

/** ISO 8601 in UTC, without milliseconds when they are zero. */
export const formatTime = isoTime;
