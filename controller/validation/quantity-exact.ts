/**
 * Exact comparison of Kubernetes quantities, as CEL's quantity().compareTo() does: `1500m` is above `1` even though both
 * round up to 2 bytes. shared/quantity.ts rounds to whole bytes, which is right for sizes but not for checking what the
 * API server's rules would say about the same text.
 */
import { isQuantity } from '../../shared/quantity.ts';

interface Fraction {
  numerator: bigint;
  denominator: bigint;
}

const binaryShifts: Record<string, bigint> = { Ki: 10n, Mi: 20n, Gi: 30n, Ti: 40n, Pi: 50n, Ei: 60n };
const decimalExponents: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const pattern = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$/;

export { isQuantity };

function toFraction(text: string): Fraction {
  const match = pattern.exec(text);
  if (!match) throw new RangeError(`not a quantity: ${JSON.stringify(text)}`);
  const [, sign = '', number = '', suffix = ''] = match;
  const [whole = '', fraction = ''] = number.split('.');
  let numerator = BigInt((whole || '0') + fraction) * (sign === '-' ? -1n : 1n);
  let exponent = -fraction.length;
  const shift = binaryShifts[suffix];
  if (shift !== undefined) numerator <<= shift;
  else if (/^[eE]/.test(suffix)) exponent += Number(suffix.slice(1));
  else exponent += decimalExponents[suffix] ?? 0;
  return exponent >= 0
    ? { numerator: numerator * 10n ** BigInt(exponent), denominator: 1n }
    : { numerator, denominator: 10n ** BigInt(-exponent) };
}

/** -1, 0 or 1 as `a` is below, equal to or above `b`. Both must be quantities (see isQuantity). */
export function compareQuantities(a: string, b: string): -1 | 0 | 1 {
  const x = toFraction(a);
  const y = toFraction(b);
  const left = x.numerator * y.denominator;
  const right = y.numerator * x.denominator;
  return left < right ? -1 : left > right ? 1 : 0;
}
