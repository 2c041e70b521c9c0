/** Synthetic volume identities for the agent benchmarks. */
import type { VolumeIdentity } from '../shared/readings.ts';

export function identity(i: number, mountPath: string): VolumeIdentity {
  const instance = `pg${Math.floor(i / 3)}-${(i % 3) + 1}`;
  return {
    key: `bench/${instance}-v${i}`, namespace: 'bench', cluster: `pg${Math.floor(i / 3)}`, instance, role: 'data',
    pvc: `${instance}-v${i}`, pv: `pv-${i}`, podName: instance, podUid: `uid-${i}`, node: 'bench', path: mountPath,
  };
}
