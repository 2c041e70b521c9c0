/**
 * Kubernetes resource quantities (`10Gi`, `500M`, `1.5Ti`, `2e9`) as exact byte counts.
 *
 * Parsing follows apimachinery's grammar: an optionally signed decimal number followed by a binary-SI suffix
 * (Ki..Ei), a decimal-SI suffix (n, u, m, k, M, G, T, P, E) or a decimal exponent (e3, E6). A fractional byte count is
 * rounded up, as `Quantity.Value()` does. Sizes are handled as `number` (exact up to 8 PiB, far beyond any disk); a
 * quantity beyond that is rejected rather than silently rounded.
 */
import { InvalidInputError } from './errors.ts';

const binarySuffixes: Record<string, bigint> = {
  Ki: 1n << 10n, Mi: 1n << 20n, Gi: 1n << 30n, Ti: 1n << 40n, Pi: 1n << 50n, Ei: 1n << 60n,
};
const decimalSuffixes: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

const quantityPattern = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$/;

export const KiB = 1024;
export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;
export const TiB = 1024 ** 4;

export function isQuantity(text: string): boolean {
  return quantityPattern.test(text);
}

/** Exact value of a quantity in bytes, rounded up to a whole byte. Throws InvalidInputError (code InvalidQuantity). */
export function parseQuantityBig(text: string, field = 'quantity'): bigint {
  const match = quantityPattern.exec(text);
  if (!match) {
    throw new InvalidInputError('InvalidQuantity', field, `"${text}" is not a valid quantity (examples: 10Gi, 500Mi, 1Ti)`);
  }
  const [, sign = '', number = '', suffix = ''] = match;
  const [whole = '', fraction = ''] = number.split('.');
  let numerator = BigInt((whole || '0') + fraction);
  let exponent10 = -fraction.length;
  const binary = binarySuffixes[suffix];
  if (binary !== undefined) {
    numerator *= binary;
  } else if (/^[eE]/.test(suffix)) {
    exponent10 += Number(suffix.slice(1));
  } else {
    exponent10 += decimalSuffixes[suffix] ?? 0;
  }
  let value: bigint;
  if (exponent10 >= 0) {
    value = numerator * 10n ** BigInt(exponent10);
  } else {
    const divisor = 10n ** BigInt(-exponent10);
    value = (numerator + divisor - 1n) / divisor;
  }
  return sign === '-' ? -value : value;
}

/**
 * Quantities parsed before: a fleet's reconciles read the same few sizes (`10Gi`) tens of thousands of times a minute.
 * Bounded; only valid quantities are kept (an error names the field it was read from).
 */
const parsed = new Map<string, number>();
const MAX_PARSED = 4096;

/** A quantity in bytes as a safe integer. Throws InvalidInputError (codes InvalidQuantity, QuantityTooLarge). */
export function parseQuantity(text: string, field = 'quantity'): number {
  const known = parsed.get(text);
  if (known !== undefined) return known;
  const result = parseSafeQuantity(text, field);
  if (parsed.size >= MAX_PARSED) parsed.clear();
  parsed.set(text, result);
  return result;
}

function parseSafeQuantity(text: string, field: string): number {
  const value = parseQuantityBig(text, field);
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < -BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidInputError('QuantityTooLarge', field, `"${text}" is larger than this product handles (8Pi)`);
  }
  return Number(value);
}

/**
 * Canonical text for a byte count: the largest binary suffix that divides it exactly (`25Gi`, `1536Mi`), else plain bytes,
 * which is how Kubernetes prints sizes it computed itself.
 */
export function formatQuantity(bytes: number): string {
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`formatQuantity: ${bytes} is not a whole number of bytes`);
  if (bytes === 0) return '0';
  const suffixes = ['Ei', 'Pi', 'Ti', 'Gi', 'Mi', 'Ki'] as const;
  const big = BigInt(bytes);
  for (const suffix of suffixes) {
    const unit = binarySuffixes[suffix] ?? 1n;
    if (big % unit === 0n) return `${big / unit}${suffix}`;
  }
  return String(bytes);
}

/** Human-oriented rendering with one decimal (`17.9Gi`), for tables and messages; never parsed back. */
export function formatBytesHuman(bytes: number): string {
  const units = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi'];
  let value = bytes;
  let index = 0;
  while (Math.abs(value) >= 1024 && index < units.length - 1) {
    value /= 1024;
    index += 1;
  }
  const text = index === 0 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(1);
  return `${text}${units[index] ?? ''}`;
}

/** Smallest multiple of `unit` that is >= bytes. */
export function roundUpTo(bytes: number, unit: number): number {
  if (unit <= 0) throw new RangeError('roundUpTo: unit must be positive');
  return Math.ceil(bytes / unit) * unit;
}
