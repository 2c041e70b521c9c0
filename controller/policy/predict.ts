/**
 * Fill rates for predictive emergencies and look-ahead growth. A rate must describe growth that is still going on:
 * - only readings of the current filesystem count, taken after the volume's last resize completed, so a resize always
 *   re-arms with new evidence (the hysteresis that prevents growth storms);
 * - a completed step is not a trend: one interval holding most of the window's growth, with no fast growth beside it,
 *   is a level shift (a bulk write that finished) and is taken out of the series before fitting; so is a write that
 *   came in pieces spanning less than a minute, as a trend needs that long to be one;
 * - a trend that stopped is not extrapolated: when the recent rate is below half the fitted one, the recent rate wins;
 *   writes that came in a few bursts stopped once the usage stayed quiet for longer than any pause between them, and
 *   the rate since is the recent one;
 * - a burst is seen within a few readings: growth in every interval of the latest run, at that run's own rate.
 * The result is the larger of the trend and the burst rate: the disk fills at least as fast as either says.
 */
import type { ActionRecord, DiskReading, LongTermGrowth, PredictionTuning } from './types.ts';
import { ActionResults } from './types.ts';
import { isPlausibleReading, usageOf } from './usage.ts';

interface Point {
  t: number;
  used: number;
}

/** Bytes per second of `used` growth, or undefined when the evidence is too thin. Negative rates are returned as such. */
export function fillRate(
  readings: readonly DiskReading[],
  notBefore: Date | undefined,
  tuning: PredictionTuning,
  now: Date,
): number | undefined {
  const observed = currentFilesystemPoints(readings, notBefore, tuning, now);
  if (observed.length < tuning.minReadings) return undefined;
  const points = withQuietUntilNow(observed, now);
  // One classification of the intervals serves the burst, the steps and the stop.
  const intervals = intervalsOf(points, tuning);
  const burst = burstRate(points, intervals, tuning);
  const trend = trendRate(withoutSteps(points, tuning, { shortWritesAreSteps: true, intervals }), tuning, burstsStoppedAt(points, intervals, tuning));
  if (burst === undefined) return trend;
  return trend === undefined ? burst : Math.max(burst, trend);
}

/** Plausible readings within the look-back, after `notBefore`, of the filesystem the latest reading shows; sorted, one per instant. */
function currentFilesystemPoints(readings: readonly DiskReading[], notBefore: Date | undefined, tuning: PredictionTuning, now: Date): Point[] {
  const since = Math.max(now.getTime() - tuning.lookbackMs, notBefore === undefined ? -Infinity : notBefore.getTime() + 1);
  const usable = readings
    .filter((reading) => isPlausibleReading(reading))
    .filter((reading) => reading.sampledAt.getTime() >= since && reading.sampledAt.getTime() <= now.getTime())
    .sort((a, b) => a.sampledAt.getTime() - b.sampledAt.getTime());
  const latest = usable.at(-1);
  if (latest === undefined) return [];
  const byTime = new Map<number, Point>();
  for (const reading of usable) {
    if (reading.totalBytes !== latest.totalBytes) continue;
    const t = reading.sampledAt.getTime();
    byTime.set(t, { t, used: usageOf(reading).usedBytes });
  }
  return [...byTime.values()];
}

function intervalRate(a: Point, b: Point): number {
  return (b.used - a.used) / ((b.t - a.t) / 1000);
}

/** The latest run of growing intervals: the index of the point it starts from (the last point when there is none). */
function latestRunStart(points: readonly Point[]): number {
  let start = points.length - 1;
  while (start > 0 && (points[start]?.used ?? 0) > (points[start - 1]?.used ?? 0)) start -= 1;
  return start;
}

/**
 * Readings arrive when the numbers change. When the latest run of growth has had no reading for more than twice its own
 * cadence (and a second), the growth stopped at the latest reading: the series is completed with that level at `now`,
 * which closes the run. A regular sampler (the replay) always has a reading at `now`, so nothing is added there.
 */
function withQuietUntilNow(points: readonly Point[], now: Date): Point[] {
  const start = latestRunStart(points);
  const last = points.at(-1);
  if (last === undefined || start === points.length - 1) return [...points];
  const gaps = points.slice(start + 1).map((point, i) => point.t - (points[start + i]?.t ?? point.t));
  const cadence = median(gaps);
  if (now.getTime() - last.t <= 2 * cadence + 1000) return [...points];
  return [...points, { t: now.getTime(), used: last.used }];
}

/**
 * The rate of the latest run of fast intervals (see `intervalsOf`), when it has at least two, reaches the latest reading
 * and spans `burstMinSpanMs`: a bulk load seen within seconds. The run's first interval is left out of the rate, as the
 * growth may have started anywhere within it. Slow growth followed by one jump is no burst: the jump is a step.
 */
function burstRate(points: readonly Point[], { fast }: Intervals, tuning: PredictionTuning): number | undefined {
  const run = fastRuns(fast).at(-1);
  if (run === undefined || run.end !== fast.length - 1 || run.end - run.start < 1) return undefined;
  const first = points[run.start + 1];
  const last = points.at(-1);
  if (first === undefined || last === undefined || last.t - (points[run.start]?.t ?? last.t) < tuning.burstMinSpanMs) return undefined;
  return intervalRate(first, last);
}

interface Intervals {
  growth: number[];
  rate: number[];
  /** Growing more than `stepContrast` times faster than the series' typical rate (the median absolute interval rate). */
  fast: boolean[];
}

function intervalsOf(points: readonly Point[], tuning: PredictionTuning): Intervals {
  const growth = points.slice(1).map((point, i) => point.used - (points[i]?.used ?? point.used));
  const rate = points.slice(1).map((point, i) => intervalRate(points[i] ?? point, point));
  const typical = median(rate.map((r) => Math.abs(r)));
  return { growth, rate, fast: rate.map((r) => r > 0 && r > tuning.stepContrast * typical) };
}

/**
 * The series with its steps taken out: a run of consecutive intervals growing more than `stepContrast` times faster than
 * the series' typical rate (the median of the absolute interval rates), holding more than `stepShare` of the window's
 * growth, and shorter than `stepMaxDurationMs`, is a level shift (a bulk write), not a rate (growth that lasts longer
 * is a trend, however fast). A run still going on at the end of the series counts as a step only while it spans less
 * than `burstMinSpanMs` (until then the next readings show whether the growth goes on; from then on it is a burst, at
 * its own rate), unless `openRunsAreSteps`.
 * With `shortWritesAreSteps`, so are the runs of one write that came in pieces: runs less than `minSpanMs` apart that
 * span less than `minSpanMs` in all (the one still going on while it spans less than `burstMinSpanMs`). A trend needs
 * `minSpanMs` of growth to be one; quiet readings before a write are no evidence that it goes on, and a staircase that
 * does go on soon spans that long.
 */
function withoutSteps(
  points: readonly Point[],
  tuning: PredictionTuning,
  options: { openRunsAreSteps?: boolean; shortWritesAreSteps?: boolean; intervals?: Intervals } = {},
): Point[] {
  const { growth, fast } = options.intervals ?? intervalsOf(points, tuning);
  const totalGrowth = growth.reduce((sum, g) => sum + Math.max(0, g), 0);
  const shiftAfter = new Array<number>(growth.length).fill(0);
  const runs = fastRuns(fast);
  const shortWrites = options.shortWritesAreSteps === true ? shortWriteRuns(points, runs, tuning) : new Set<number>();
  for (const [index, run] of runs.entries()) {
    const runGrowth = growth.slice(run.start, run.end + 1).reduce((sum, g) => sum + g, 0);
    const open = run.end === growth.length - 1;
    const runMs = (points[run.end + 1]?.t ?? 0) - (points[run.start]?.t ?? 0);
    const lasting = runMs > tuning.stepMaxDurationMs;
    const burst = open && options.openRunsAreSteps !== true && run.end > run.start && runMs >= tuning.burstMinSpanMs;
    if (!shortWrites.has(index) && (runGrowth <= totalGrowth * tuning.stepShare || lasting || burst)) continue;
    let taken = 0;
    for (let i = run.start; i < growth.length; i += 1) {
      if (i <= run.end) taken += growth[i] ?? 0;
      shiftAfter[i] = (shiftAfter[i] ?? 0) + taken;
    }
  }
  return points.map((point, index) => ({ t: point.t, used: point.used - (index === 0 ? 0 : (shiftAfter[index - 1] ?? 0)) }));
}

/** The indexes (in `runs`) of the runs of writes that span less than `minSpanMs` (see `withoutSteps`). */
function shortWriteRuns(points: readonly Point[], runs: readonly { start: number; end: number }[], tuning: PredictionTuning): Set<number> {
  const steps = new Set<number>();
  const startOf = (index: number): number => points[runs[index]?.start ?? 0]?.t ?? 0;
  const endOf = (index: number): number => points[(runs[index]?.end ?? 0) + 1]?.t ?? 0;
  let first = 0;
  for (let index = 0; index < runs.length; index += 1) {
    const chainEnds = index === runs.length - 1 || startOf(index + 1) - endOf(index) >= tuning.minSpanMs;
    if (!chainEnds) continue;
    // A run still going on is a step until it spans `burstMinSpanMs`, and a burst from then on.
    const ended = (runs[index]?.end ?? 0) + 1 < points.length - 1;
    const lastStep = ended || endOf(index) - startOf(index) < tuning.burstMinSpanMs ? index : index - 1;
    if (endOf(index) - startOf(first) < tuning.minSpanMs) for (let i = first; i <= lastStep; i += 1) steps.add(i);
    first = index + 1;
  }
  return steps;
}

/** Maximal runs of consecutive true entries, as inclusive index ranges. */
function fastRuns(fast: readonly boolean[]): { start: number; end: number }[] {
  const runs: { start: number; end: number }[] = [];
  for (let start = 0; start < fast.length; start += 1) {
    if (!fast[start] || (start > 0 && fast[start - 1])) continue;
    let end = start;
    while (end + 1 < fast.length && fast[end + 1]) end += 1;
    runs.push({ start, end });
  }
  return runs;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return 0;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/**
 * When the window's bursts of writes stopped: the end of the latest run of fast intervals (see `intervalsOf`), once the
 * usage has grown no faster than typical since for longer than any pause between those runs and than `burstMinSpanMs`.
 * Undefined while a run may still be going on.
 */
function burstsStoppedAt(points: readonly Point[], { fast }: Intervals, tuning: PredictionTuning): number | undefined {
  const runs = fastRuns(fast);
  const latest = runs.at(-1);
  const last = points.at(-1);
  const end = latest === undefined ? undefined : points[latest.end + 1];
  if (end === undefined || last === undefined || end === last) return undefined;
  const pauses = runs.slice(1).map((run, i) => (points[run.start]?.t ?? 0) - (points[(runs[i]?.end ?? 0) + 1]?.t ?? 0));
  return last.t - end.t > Math.max(tuning.burstMinSpanMs, ...pauses) ? end.t : undefined;
}

/**
 * The least-squares slope over the window, replaced by the recent rate when growth has slowed to less than half of it.
 * Recent is since the bursts stopped when they did (`stoppedAt`), else over `recentSpanMs`.
 */
function trendRate(points: readonly Point[], tuning: PredictionTuning, stoppedAt?: number): number | undefined {
  const first = points[0];
  const last = points.at(-1);
  if (first === undefined || last === undefined || last.t - first.t < tuning.minSpanMs) return undefined;
  const slope = leastSquaresSlope(points.map((point) => ({ x: (point.t - first.t) / 1000, y: point.used })));
  if (slope === undefined) return undefined;
  const since = stoppedAt ?? last.t - tuning.recentSpanMs;
  const reference = [...points].reverse().find((point) => point.t <= since) ?? first;
  if (reference === last) return slope;
  const recent = intervalRate(reference, last);
  return recent < slope / 2 ? recent : slope;
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
 * The long-term growth of `used`, from sparse readings of the last days, in two parts that are projected differently
 * (see `growthWithin`): a rate is not projected further ahead than the span it was measured over.
 * - The **typical** rate, projected over any horizon: with a day of history or more the mean day-over-day change (each
 *   reading against the one nearest to 24 h before it), which cancels a daily cycle such as nightly temp files exactly;
 *   with less, the least-squares slope, once the readings span `minSpanMs`. While the last hours grow faster than that
 *   mean (growth began hours ago, a runaway WAL), hours of it would move the mean of the days it is in: the typical rate
 *   is then the median of the interval rates (one interval per sparse reading), which such hours do not move.
 * - The **recent excess**: how much faster than the typical rate the last hours (`recentGrowthSpanMs`, least squares)
 *   grow, when that growth is sustained; projected for at most those hours.
 * Before the readings span `minSpanMs`, the recent rate is the typical one, in full. Hours of evidence are needed either
 * way, and steps (bulk loads, finished or not) are taken out first, so minutes of noise or one bulk load do not decide
 * how much planned growth buys ahead.
 */
export function longTermGrowth(readings: readonly DiskReading[], tuning: PredictionTuning, minSpanMs: number, now: Date): LongTermGrowth | undefined {
  const points = readings
    .filter((reading) => isPlausibleReading(reading) && reading.sampledAt.getTime() <= now.getTime())
    .map((reading) => ({ t: reading.sampledAt.getTime(), used: usageOf(reading).usedBytes }))
    .sort((a, b) => a.t - b.t);
  const first = points[0];
  const last = points.at(-1);
  if (first === undefined || last === undefined || points.length < 3) return undefined;
  const levelled = withoutSteps(points, tuning, { openRunsAreSteps: true });
  const slope = (series: readonly Point[]): number | undefined => {
    const origin = series[0]?.t ?? 0;
    return series.length < 3 ? undefined : leastSquaresSlope(series.map((point) => ({ x: (point.t - origin) / 1000, y: point.used })));
  };
  const mean = last.t - first.t < minSpanMs ? undefined : (dayOverDay(levelled) ?? slope(levelled));
  // It counts only when sustained: each half of those hours grows at least half as fast, so a nightly job ramping up
  // for an hour or two is not taken for a new trend.
  const recent = sustainedSlope(levelled.filter((point) => point.t >= last.t - tuning.recentGrowthSpanMs), tuning.recentGrowthSpanMs / 2, slope);
  if (mean === undefined) return recent === undefined ? undefined : { typical: recent, recentExcess: 0 };
  if (recent === undefined || recent <= mean) return { typical: mean, recentExcess: 0 };
  const typical = median(levelled.slice(1).map((point, i) => intervalRate(levelled[i] ?? point, point)));
  return { typical, recentExcess: Math.max(0, recent - Math.max(0, typical)) };
}

/** The long-term growth rate now, in bytes per second: the typical rate and the recent excess together. */
export function rateOf(growth: LongTermGrowth | undefined): number | undefined {
  return growth === undefined ? undefined : Math.max(growth.typical, Math.max(0, growth.typical) + growth.recentExcess);
}

/**
 * Bytes the long-term growth adds in `seconds`: the typical rate for all of them, the recent excess for at most the
 * `recentGrowthSpanMs` it was measured over (hours of a runaway WAL say it may go on for hours, not for days).
 */
export function growthWithin(growth: LongTermGrowth | undefined, seconds: number, tuning: PredictionTuning): number {
  if (growth === undefined || seconds <= 0) return 0;
  return Math.max(0, growth.typical) * seconds + growth.recentExcess * Math.min(seconds, tuning.recentGrowthSpanMs / 1000);
}

function sustainedSlope(points: readonly Point[], minSpanMs: number, slope: (series: readonly Point[]) => number | undefined): number | undefined {
  const first = points[0];
  const last = points.at(-1);
  if (first === undefined || last === undefined || last.t - first.t < minSpanMs) return undefined;
  const overall = slope(points);
  if (overall === undefined || overall <= 0) return overall;
  const middle = (first.t + last.t) / 2;
  const halves = [points.filter((point) => point.t <= middle), points.filter((point) => point.t >= middle)].map(slope);
  return halves.every((half) => half !== undefined && half >= overall / 2) ? overall : undefined;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** A reading counts as "24 h before" another when it is within this of that instant. */
const DAY_TOLERANCE_MS = 60 * 60 * 1000;

function dayOverDay(points: readonly Point[]): number | undefined {
  const rates: number[] = [];
  let j = 0;
  for (const point of points) {
    const target = point.t - DAY_MS;
    while (j + 1 < points.length && Math.abs((points[j + 1]?.t ?? Infinity) - target) <= Math.abs((points[j]?.t ?? Infinity) - target)) j += 1;
    const before = points[j];
    if (before === undefined || Math.abs(before.t - target) > DAY_TOLERANCE_MS || before.t >= point.t) continue;
    rates.push(intervalRate(before, point));
  }
  return rates.length === 0 ? undefined : rates.reduce((sum, rate) => sum + rate, 0) / rates.length;
}

/**
 * How long `used` has grown at about `rate` up to the latest reading: the longest span back from it over which the
 * average growth was at least `SUSTAINED_SHARE` of `rate`. Readings of earlier filesystems count (used bytes do not
 * change with the size), so a fill is followed across resizes, and sparse readings of the last days show a fill that has
 * gone on for hours. 0 when nothing earlier shows it.
 */
export function sustainedForMs(readings: readonly DiskReading[], rate: number, now: Date): number {
  if (rate <= 0) return 0;
  const points = readings
    .filter((reading) => isPlausibleReading(reading) && reading.sampledAt.getTime() <= now.getTime())
    .map((reading) => ({ t: reading.sampledAt.getTime(), used: usageOf(reading).usedBytes }));
  const latest = points.reduce<Point | undefined>((found, point) => (found === undefined || point.t > found.t ? point : found), undefined);
  if (latest === undefined) return 0;
  let span = 0;
  for (const point of points) {
    if (point.t < latest.t && intervalRate(point, latest) >= SUSTAINED_SHARE * rate) span = Math.max(span, latest.t - point.t);
  }
  return span;
}

/** A fill counts as going on over a span when the span grew at least this share of its rate on average. */
const SUSTAINED_SHARE = 3 / 4;

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

/** How far ahead a disk must not fill: `safetyFactor` times the resize latency (a resize can still finish, with margin). */
export function resizeHorizonMs(history: readonly ActionRecord[], tuning: PredictionTuning): number {
  return resizeLatencyMs(history, tuning) * tuning.safetyFactor;
}

/** When the readings of the fill rate may start: after the last action completed (or was taken, while it runs). */
export function rateEvidenceSince(lastAction: ActionRecord | undefined): Date | undefined {
  return lastAction?.completedAt ?? lastAction?.timestamp;
}

/** Seconds until `bytes` more are used at `rate`, or undefined when the disk is not filling. */
export function secondsToUse(bytes: number, rate: number | undefined): number | undefined {
  if (rate === undefined || rate <= 0) return undefined;
  return Math.max(0, bytes) / rate;
}
