import assert from 'node:assert/strict';
import { evaluateBudget, type ActionRecord } from '../../../controller/policy/index.ts';
import { rejectedAttemptAllowedAt, rejectedAttempts } from '../../../controller/policy/budget.ts';
import { HOUR, action } from './fixtures.ts';

const now = new Date('2024-06-01T12:00:00Z');
const ago = (hours: number, result: ActionRecord['result'] = 'Success'): ActionRecord => action({ timestamp: new Date(now.getTime() - hours * HOUR), result });
const limits = { maxActionsPerDay: 4, reservedActionsForEmergency: 1 };
const iso = (d: Date | undefined) => d?.toISOString();

describe('policy/budget', () => {
  it('starts full', () => {
    const budget = evaluateBudget([], limits, now);
    assert.deepEqual([budget.actionsLast24h, budget.availableForPlanned, budget.availableForEmergency, budget.budgetResetsAt], [0, 3, 4, undefined]);
    assert.equal(iso(budget.plannedAvailableAt), iso(now));
  });

  it('counts a rolling 24 h, failed and pending attempts included', () => {
    const budget = evaluateBudget([ago(30), ago(23, 'Failed'), ago(2, 'Pending'), ago(1)], limits, now);
    assert.deepEqual([budget.actionsLast24h, budget.availableForPlanned, budget.availableForEmergency], [3, 0, 1]);
    assert.equal(iso(budget.budgetResetsAt), '2024-06-01T13:00:00.000Z');
    assert.equal(iso(budget.plannedAvailableAt), '2024-06-01T13:00:00.000Z');
    assert.equal(iso(budget.emergencyAvailableAt), iso(now));
  });

  it('does not count rejected attempts (no disk was touched), and bounds them on their own', () => {
    const history = [ago(5, 'Rejected'), ago(4, 'Rejected'), ago(1)];
    const budget = evaluateBudget(history, limits, now);
    assert.deepEqual([budget.actionsLast24h, budget.availableForPlanned, budget.availableForEmergency], [1, 2, 3]);
    assert.deepEqual(rejectedAttempts(history, now), [now.getTime() - 5 * HOUR, now.getTime() - 4 * HOUR]);
    assert.equal(iso(rejectedAttemptAllowedAt(history, 3, now)), iso(now));
    assert.equal(iso(rejectedAttemptAllowedAt(history, 2, now)), '2024-06-02T07:00:00.000Z');
  });

  it('lets an action expire exactly 24 h after it', () => {
    assert.equal(evaluateBudget([ago(24)], limits, now).actionsLast24h, 0);
    assert.equal(evaluateBudget([ago(23.999)], limits, now).actionsLast24h, 1);
  });

  it('finds when enough actions have expired', () => {
    const budget = evaluateBudget([ago(20), ago(10), ago(5), ago(1)], limits, now);
    assert.equal(iso(budget.emergencyAvailableAt), '2024-06-01T16:00:00.000Z');
    assert.equal(iso(budget.plannedAvailableAt), '2024-06-02T02:00:00.000Z');
  });

  it('never allows planned actions when all are reserved, nor any when the maximum is 0', () => {
    assert.equal(evaluateBudget([], { maxActionsPerDay: 2, reservedActionsForEmergency: 2 }, now).plannedAvailableAt, undefined);
    const none = evaluateBudget([], { maxActionsPerDay: 0, reservedActionsForEmergency: 0 }, now);
    assert.deepEqual([none.availableForEmergency, none.emergencyAvailableAt], [0, undefined]);
  });
});
