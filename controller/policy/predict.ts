/**
 * Predictive emergencies: when a disk will be full before a resize could finish, waiting for the critical threshold is too
 * late. The fill rate is a least-squares slope over a look-back window, which a single spike moves far less than a
 * two-point difference would; it needs several readings over a minimum span, and only readings taken after the volume's
 * last action count, so a fresh resize always re-arms with new evidence (the hysteresis that prevents growth storms).
 */
import type { ActionRecord, DiskReading, PredictionTuning } from './types.ts';
import { ActionResults } from './types.ts';
import { isPlausibleReading, usageOf } from './usage.ts';

/** Bytes per second of `used` growth, or undefined when the evidence is too thin. Negative rates are returned as such. */
export function fillRate(
  readings: readonly DiskReading[],
  notBefore: Date | undefined,
  tuning: PredictionTuning,
  now: Date,
): number | undefined {
  const since = Math.max(now.getTime() - tuning.lookbackMs, notBefore === undefined ? -Infinity : notBefore.getTime() + 1);
  const points = readings
    .filter((reading) => isPlausibleReading(reading))
    .map((reading) => ({ t: reading.sampledAt.getTime(), used: usageOf(reading).usedBytes }))
    .filter((point) => point.t >= since && point.t <= now.getTime());
  if (points.length < tuning.minReadings) return undefined;
  const times = points.map((point) => point.t);
  if (Math.max(...times) - Math.min(...times) < tuning.minSpanMs) return undefined;
  return leastSquaresSlope(points.map((point) => ({ x: (point.t - since) / 1000, y: point.used })));
}

function leastSquaresSlope(points: readonly { x: number; y: number }[]): number | undefined {
  const n = points.length;
  const meanX = points.reduce((sum, p) => sum + p.x, 0) / n;
  const meanY = points.reduce((sum, p) => sum + p.y, 0) / n;
  let covariance = 0;
  let variance = 0;
  for (const p of points) {
    covariance += (p.x - meanX) * (p.y - meanY);
    variance += (p.x - meanX) ** 2;
  }
  return variance > 0 ? covariance / variance : undefined;
}

/**
 * How long a resize takes here: the longest of the most recent completed actions (the slow case is the one that matters),
 * clamped to a sane range; the default when nothing was learned yet.
 */
export function resizeLatencyMs(history: readonly ActionRecord[], tuning: PredictionTuning): number {
  const samples = history
    .filter((action) => action.result === ActionResults.Success && action.completedAt !== undefined)
    .sort((a, b) => b.timestamp.getTime() - a.timestamp.getTime())
    .slice(0, tuning.latencySamples)
    .map((action) => (action.completedAt?.getTime() ?? 0) - action.timestamp.getTime())
    .filter((latency) => latency >= 0);
  if (samples.length === 0) return tuning.defaultResizeLatencyMs;
  return Math.min(tuning.maxResizeLatencyMs, Math.max(tuning.minResizeLatencyMs, ...samples));
}

/** Seconds until `available` is used up at `rate`, or undefined when the disk is not filling meaningfully. */
export function secondsToFull(availableBytes: number, rate: number | undefined, tuning: PredictionTuning): number | undefined {
  if (rate === undefined || rate < tuning.minRateBytesPerSecond) return undefined;
  return availableBytes / rate;
}
