import assert from 'node:assert/strict';
import type { VolumeSizingStatus } from '../../../shared/api/dynamicstorage.generated.ts';
import { createControllerMetrics, latestActionAt } from '../../../controller/metrics.ts';

const key = { namespace: 'db', cluster: 'pg', dynamicStorage: 'pg', role: 'wal' as const };
const status: VolumeSizingStatus = {
  effectiveSize: '12Gi', targetSize: '12Gi', state: 'Resizing', reason: 'ResizeStuck', message: 'the resize has not finished after 30m',
  budget: { actionsLast24h: 2, availableForPlanned: 1, availableForEmergency: 1 },
  recentActions: [
    { kind: 'ScheduledGrow', from: '8Gi', to: '10Gi', timestamp: '2026-01-12T03:00:00Z', result: 'Success' },
    { kind: 'EmergencyGrow', from: '10Gi', to: '12Gi', timestamp: '2026-01-12T10:00:00Z', result: 'Pending' },
  ],
  lastAction: { kind: 'EmergencyGrow', from: '10Gi', to: '12Gi', timestamp: '2026-01-12T10:00:00Z', result: 'Pending' },
};

/** The volume's lines of one metric family, in exposition order. */
function family(text: string, name: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

describe('controller metrics', () => {
  it('exposes the state\'s reason as one series per volume', async () => {
    const metrics = createControllerMetrics();
    metrics.observeVolume(key, status);
    assert.deepEqual(family(await metrics.expose(), 'cnpg_dynamic_storage_state_reason'), [
      'cnpg_dynamic_storage_state_reason{namespace="db",cluster="pg",volume_type="wal",tablespace="",state="Resizing",reason="ResizeStuck"} 1',
    ]);
    metrics.observeVolume(key, { ...status, state: 'Balanced', reason: 'WithinTargetBuffer' });
    assert.deepEqual(family(await metrics.expose(), 'cnpg_dynamic_storage_state_reason'), [
      'cnpg_dynamic_storage_state_reason{namespace="db",cluster="pg",volume_type="wal",tablespace="",state="Balanced",reason="WithinTargetBuffer"} 1',
    ]);
  });

  it('exposes when the latest action of each kind was taken, from the status (it survives a restart)', async () => {
    const metrics = createControllerMetrics();
    metrics.observeVolume(key, status);
    metrics.observeVolume({ ...key, role: 'tablespace', tablespace: 'analytics' }, { ...status, recentActions: [], lastAction: undefined });
    assert.deepEqual(family(await metrics.expose(), 'cnpg_dynamic_storage_last_action_timestamp_seconds'), [
      `cnpg_dynamic_storage_last_action_timestamp_seconds{namespace="db",cluster="pg",volume_type="wal",tablespace="",kind="EmergencyGrow"} ${Date.UTC(2026, 0, 12, 10) / 1000}`,
      `cnpg_dynamic_storage_last_action_timestamp_seconds{namespace="db",cluster="pg",volume_type="wal",tablespace="",kind="ScheduledGrow"} ${Date.UTC(2026, 0, 12, 3) / 1000}`,
    ]);
  });

  it('takes the latest action of a kind from lastAction or recentActions, ignoring unreadable timestamps', () => {
    assert.equal(latestActionAt({ lastAction: { kind: 'ScheduledGrow', timestamp: '2026-01-13T03:00:00Z' }, recentActions: status.recentActions }, 'ScheduledGrow'), Date.UTC(2026, 0, 13, 3));
    assert.equal(latestActionAt({ recentActions: [{ kind: 'EmergencyGrow', timestamp: 'yesterday' }] }, 'EmergencyGrow'), undefined);
    assert.equal(latestActionAt({}, 'EmergencyGrow'), undefined);
  });

  it('exposes the brief\'s gauges and the state of a volume exactly, and drops them with the volume', async () => {
    const metrics = createControllerMetrics();
    metrics.observeVolume(key, status);
    const text = await metrics.expose();
    const labels = 'namespace="db",cluster="pg",volume_type="wal",tablespace=""';
    assert.deepEqual(family(text, 'cnpg_dynamic_storage_effective_size_bytes'), [`cnpg_dynamic_storage_effective_size_bytes{${labels}} ${12 * 1024 ** 3}`]);
    assert.deepEqual(family(text, 'cnpg_dynamic_storage_target_size_bytes'), [`cnpg_dynamic_storage_target_size_bytes{${labels}} ${12 * 1024 ** 3}`]);
    assert.deepEqual(family(text, 'cnpg_dynamic_storage_budget_remaining'), [
      `cnpg_dynamic_storage_budget_remaining{${labels},budget="planned"} 1`, `cnpg_dynamic_storage_budget_remaining{${labels},budget="emergency"} 1`,
    ]);
    assert.deepEqual(family(text, 'cnpg_dynamic_storage_actions_last_24h'), [`cnpg_dynamic_storage_actions_last_24h{${labels}} 2`]);
    assert.equal(family(text, 'cnpg_dynamic_storage_state').filter((line) => line.endsWith(' 1')).join('\n'), `cnpg_dynamic_storage_state{${labels},state="Resizing"} 1`);
    metrics.observeVolume(key, undefined);
    assert.doesNotMatch(await metrics.expose(), /cluster="pg"/);
  });
});
