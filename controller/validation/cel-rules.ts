/**
 * The CRD's CEL rules (x-kubernetes-validations), implemented in TypeScript so the offline command reports what the API
 * server would, without a CEL engine. Each implementation is keyed by the rule's exact text: the schema walker looks
 * rules up by text, and a unit test fails when the CRD holds a rule that is missing here (or this file holds a rule the
 * CRD dropped), so a rule cannot change on one side only. The integration test then checks that both sides produce the
 * same messages for the same objects.
 */
import { compareQuantities, isQuantity } from './quantity-exact.ts';
import { ValidationCodes, type ValidationCode } from './problems.ts';

type Json = Record<string, unknown>;

export interface CelRuleImplementation {
  readonly code: ValidationCode;
  /** True when the rule holds. `self` has already passed the schema's type checks (the API server skips rules otherwise). */
  readonly holds: (self: unknown, oldSelf: unknown) => boolean;
  /** The rule's messageExpression, for rules that have one. */
  readonly message?: (self: unknown) => string;
  /** Transition rules run only on updates, when an old value exists. */
  readonly transition?: boolean;
}

const asObject = (value: unknown): Json => (typeof value === 'object' && value !== null ? (value as Json) : {});
const asString = (value: unknown): string => (typeof value === 'string' ? value : String(value));
const has = (self: unknown, key: string): boolean => asObject(self)[key] !== undefined;
const text = (self: unknown, key: string): string => asString(asObject(self)[key]);
const quantityField = (self: unknown, key: string): string | undefined => {
  const value = asObject(self)[key];
  return typeof value === 'string' && isQuantity(value) ? value : undefined;
};

/** `a <op> b` over two quantity fields of `self`; true (rule holds) when either is missing or not a quantity. */
function quantitiesOrdered(self: unknown, a: string, b: string, allowEqual: boolean): boolean {
  const left = quantityField(self, a);
  const right = quantityField(self, b);
  if (left === undefined || right === undefined) return true;
  const order = compareQuantities(left, right);
  return allowEqual ? order <= 0 : order < 0;
}

const maxQuantity = '8Pi';
const durationPattern = /^([0-9]{1,3}h)?([0-9]{1,4}m)?([0-9]{1,6}s)?$/;

function durationSeconds(value: string): number {
  const match = durationPattern.exec(value);
  const [, hours = '0h', minutes = '0m', seconds = '0s'] = match ?? [];
  return Number.parseInt(hours, 10) * 3600 + Number.parseInt(minutes, 10) * 60 + Number.parseInt(seconds, 10);
}

export const celRuleImplementations: Readonly<Record<string, CelRuleImplementation>> = {
  'has(self.storage) || has(self.walStorage) || (has(self.tablespaces) && size(self.tablespaces) > 0)': {
    code: ValidationCodes.NoVolumeRole,
    holds: (self) => {
      const tablespaces = asObject(self).tablespaces;
      return has(self, 'storage') || has(self, 'walStorage') || (Array.isArray(tablespaces) && tablespaces.length > 0);
    },
  },
  'self == oldSelf': {
    code: ValidationCodes.ClusterNameImmutable,
    transition: true,
    holds: (self, oldSelf) => self === oldSelf,
  },
  'has(self.request)': { code: ValidationCodes.RequestAndLimitRequired, holds: (self) => has(self, 'request') },
  'has(self.limit)': { code: ValidationCodes.RequestAndLimitRequired, holds: (self) => has(self, 'limit') },
  '!has(self.size)': { code: ValidationCodes.SizeNotAllowed, holds: (self) => !has(self, 'size') },
  '!has(self.request) || !has(self.limit) || !isQuantity(self.request) || !isQuantity(self.limit) || quantity(self.request).compareTo(quantity(self.limit)) <= 0': {
    code: ValidationCodes.RequestAboveLimit,
    holds: (self) => quantitiesOrdered(self, 'request', 'limit', true),
    message: (self) => `request (${text(self, 'request')}) cannot exceed limit (${text(self, 'limit')})`,
  },
  '!has(self.limit) || !isQuantity(self.limit) || !has(self.emergencyGrow) || !has(self.emergencyGrow.criticalMinimumFree) || !isQuantity(self.emergencyGrow.criticalMinimumFree) || quantity(self.emergencyGrow.criticalMinimumFree).compareTo(quantity(self.limit)) < 0': {
    code: ValidationCodes.CriticalMinimumFreeNotBelowLimit,
    holds: (self) => {
      const free = quantityField(asObject(self).emergencyGrow, 'criticalMinimumFree');
      const limit = quantityField(self, 'limit');
      return free === undefined || limit === undefined || compareQuantities(free, limit) < 0;
    },
    message: (self) => `criticalMinimumFree (${text(asObject(self).emergencyGrow, 'criticalMinimumFree')}) must be smaller than limit (${text(self, 'limit')})`,
  },
  'isQuantity(self)': { code: ValidationCodes.InvalidQuantity, holds: (self) => isQuantity(asString(self)) },
  "!isQuantity(self) || (quantity(self).isGreaterThan(quantity('0')) && quantity(self).isLessThan(quantity('8Pi')))": {
    code: ValidationCodes.QuantityOutOfRange,
    holds: (self) => {
      const value = asString(self);
      return !isQuantity(value) || (compareQuantities(value, '0') > 0 && compareQuantities(value, maxQuantity) < 0);
    },
  },
  "!isQuantity(self) || (!quantity(self).isLessThan(quantity('0')) && quantity(self).isLessThan(quantity('8Pi')))": {
    code: ValidationCodes.QuantityOutOfRange,
    holds: (self) => {
      const value = asString(self);
      return !isQuantity(value) || (compareQuantities(value, '0') >= 0 && compareQuantities(value, maxQuantity) < 0);
    },
  },
  "self.matches('^([0-9]{1,3}h)?([0-9]{1,4}m)?([0-9]{1,6}s)?$') && self != '' && duration(self) >= duration('1m') && duration(self) <= duration('168h')": {
    code: ValidationCodes.InvalidDuration,
    holds: (self) => {
      const value = asString(self);
      if (!durationPattern.test(value) || value === '') return false;
      const seconds = durationSeconds(value);
      return seconds >= 60 && seconds <= 168 * 3600;
    },
  },
  '!has(self.reservedActionsForEmergency) || !has(self.maxActionsPerDay) || self.reservedActionsForEmergency <= self.maxActionsPerDay': {
    code: ValidationCodes.ReservedActionsAboveMaximum,
    holds: (self) => {
      const { reservedActionsForEmergency: reserved, maxActionsPerDay: max } = asObject(self);
      return typeof reserved !== 'number' || typeof max !== 'number' || reserved <= max;
    },
  },
  '!has(self.maximumStep) || !has(self.minimumStep) || !isQuantity(self.minimumStep) || !isQuantity(self.maximumStep) || quantity(self.minimumStep).compareTo(quantity(self.maximumStep)) <= 0': {
    code: ValidationCodes.MinimumStepAboveMaximumStep,
    holds: (self) => quantitiesOrdered(self, 'minimumStep', 'maximumStep', true),
    message: (self) => `minimumStep (${text(self, 'minimumStep')}) cannot exceed maximumStep (${text(self, 'maximumStep')})`,
  },
};
