/**
 * Applies CRD manifests with the control plane's own kubectl (as users do) and waits until every CRD is Established.
 * The wait polls the API: `kubectl wait --for=condition=Established` fails outright when it reads the CRD before its
 * status has any condition.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from './controlplane.ts';
import { eventually } from './eventually.ts';

const run = promisify(execFile);

export async function applyCrds(plane: Pick<ControlPlane, 'binDir' | 'kubeconfigPath' | 'kubeConfig'>, files: readonly string[], timeoutMs = 60_000): Promise<string> {
  const args = ['--kubeconfig', plane.kubeconfigPath, 'apply', ...files.flatMap((f) => ['-f', f])];
  const { stdout } = await run(path.join(plane.binDir, 'kubectl'), args);
  const names = [...stdout.matchAll(/customresourcedefinition\.apiextensions\.k8s\.io\/(\S+)/g)].map((m) => m[1] ?? '');
  const ext = plane.kubeConfig.makeApiClient(k8s.ApiextensionsV1Api);
  for (const name of names) {
    await eventually(async () => {
      const crd = await ext.readCustomResourceDefinition({ name });
      const established = crd.status?.conditions?.find((c) => c.type === 'Established')?.status === 'True';
      if (!established) throw new Error(`CRD ${name} is not Established yet`);
    }, { timeoutMs, intervalMs: 100 });
  }
  return stdout;
}
