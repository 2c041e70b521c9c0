/**
 * The agent's security context on the real runtime (containerd + runc): with kubelet's real pod directories, a volume of
 * a CNPG-like pod, and the agent's own hostPath mount, a probe container
 * - under the context the product shipped before (uid 65532 with DAC_READ_SEARCH added) gets an empty effective
 *   capability set and `Permission denied` on the volume;
 * - under the context the product ships now (daemonset/daemonset.yaml, read from the file) reads the volume's
 *   filesystem, and its numbers are the ones `df` shows inside the instance's pod, with no effective capability and
 *   no access to PostgreSQL's private data directory.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { eventually } from '../../harness/eventually.ts';
import { createInstance, dataMountPath, installCnpgCrd, type Instance } from '../../node/cnpg.ts';
import { images, removeTestStorageClass, testStorageClass } from '../../node/fixtures.ts';
import { createNamespace, dfInPod, execInPod, repoRoot, useRealStack, type RealStack } from '../../node/stack.ts';

/** What daemonset/daemonset.yaml shipped before the real node showed it cannot work. */
const previous: { pod: k8s.V1PodSecurityContext; container: k8s.V1SecurityContext } = {
  pod: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
  container: {
    allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true,
    capabilities: { drop: ['ALL'], add: ['DAC_READ_SEARCH'] },
  },
};

async function shipped(): Promise<{ pod: k8s.V1PodSecurityContext; container: k8s.V1SecurityContext; mount: k8s.V1VolumeMount }> {
  const text = await readFile(path.join(repoRoot, 'daemonset/daemonset.yaml'), 'utf8');
  const ds = parseAllDocuments(text).map((d) => d.toJS() as k8s.V1DaemonSet).find((d) => d.kind === 'DaemonSet');
  const spec = ds?.spec?.template.spec;
  const container = spec?.containers.find((c) => c.name === 'agent');
  const mount = container?.volumeMounts?.find((m) => m.name === 'kubelet');
  assert.ok(spec?.securityContext && container?.securityContext && mount, 'the agent DaemonSet has security contexts and the kubelet mount');
  return { pod: spec.securityContext, container: container.securityContext, mount };
}

/** PostgreSQL keeps its data directory private to its user: mode 0700, uid 26. */
const privateDir = 'pgdata';

interface ProbeResult {
  capEff: string;
  statfs: string;
  exitCode: number;
  /** Exit codes of reading a file in, and creating a file in, PostgreSQL's private (0700, uid 26) data directory. */
  readExitCode: number;
  writeExitCode: number;
}

/**
 * A pod on the node with the agent's kubelet mount, under the given security contexts, that prints its effective
 * capabilities, statfs of the volume (`stat -f`: block size, blocks, free, available), whether it can read or create a
 * file in PostgreSQL's private data directory on it, and exits.
 */
async function probe(stack: RealStack, namespace: string, name: string, context: { pod: k8s.V1PodSecurityContext; container: k8s.V1SecurityContext }, volumePath: string): Promise<ProbeResult> {
  const script = [
    'echo "cap=$(grep CapEff /proc/self/status | tr -s "\t " " " | cut -d" " -f2)"',
    `out=$(stat -f -c "%S %b %f %a" "${volumePath}" 2>&1); rc=$?; echo "statfs=$out"; echo "exit=$rc"`,
    `cat "${volumePath}/${privateDir}/PG_VERSION" >/dev/null 2>&1; echo "read=$?"`,
    `touch "${volumePath}/${privateDir}/written-by-probe" 2>/dev/null; echo "write=$?"`,
  ].join('; ');
  await stack.core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name },
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 1,
        securityContext: context.pod,
        containers: [{
          name: 'probe', image: images.workload, imagePullPolicy: 'IfNotPresent', command: ['sh', '-c', script],
          securityContext: context.container,
          volumeMounts: [{ name: 'kubelet', mountPath: '/var/lib/kubelet', readOnly: true, mountPropagation: 'HostToContainer' }],
        }],
        volumes: [{ name: 'kubelet', hostPath: { path: '/var/lib/kubelet', type: 'Directory' } }],
      },
    },
  });
  const logs = await eventually(async () => {
    const pod = await stack.core.readNamespacedPod({ namespace, name });
    if (pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed') throw new Error(`probe ${name}: ${pod.status?.phase ?? ''} ${JSON.stringify(pod.status?.containerStatuses?.[0]?.state ?? {})}`);
    return stack.kubectl(['logs', '-n', namespace, name]);
  }, { timeoutMs: 120_000, intervalMs: 500 });
  const field = (key: string): string => new RegExp(`^${key}=(.*)$`, 'm').exec(logs)?.[1] ?? '';
  return {
    capEff: field('cap'), statfs: field('statfs'), exitCode: Number(field('exit') || -1),
    readExitCode: Number(field('read') || -1), writeExitCode: Number(field('write') || -1),
  };
}

describe("the agent's security context on a real node", function () {
  this.timeout(300_000);
  const stack = useRealStack();
  let namespace: { name: string; remove: () => Promise<void> } | undefined;
  let instance: Instance | undefined;
  let volumePath = '';

  before(async function () {
    this.timeout(600_000);
    const s = stack();
    await installCnpgCrd(s);
    const storageClass = await testStorageClass(s);
    namespace = await createNamespace(s, 'secctx');
    instance = await createInstance(s, { namespace: namespace.name, cluster: 'pg', size: '32Mi', storageClass, image: images.workload });
    const pvc = await s.core.readNamespacedPersistentVolumeClaim({ namespace: namespace.name, name: instance.pvc });
    await execInPod(s, namespace.name, instance.name, ['sh', '-c', `mkdir -m 0700 ${dataMountPath}/${privateDir} && echo 18 > ${dataMountPath}/${privateDir}/PG_VERSION`]);
    volumePath = `/var/lib/kubelet/pods/${instance.pod.metadata?.uid ?? ''}/volumes/kubernetes.io~csi/${pvc.spec?.volumeName ?? ''}/mount`;
  });

  after(async function () {
    this.timeout(180_000);
    const s = stack();
    await namespace?.remove();
    await removeTestStorageClass(s);
  });

  it('the context shipped before cannot read the volumes: no effective capabilities, permission denied', async function () {
    const result = await probe(stack(), namespace!.name, 'previous', previous, volumePath);
    assert.equal(result.capEff, '0000000000000000', `effective capabilities of a non-root container with DAC_READ_SEARCH added: ${result.capEff}`);
    assert.notEqual(result.exitCode, 0, `statfs must fail: ${result.statfs}`);
    assert.match(result.statfs, /Permission denied/);
  });

  it('the context shipped now reads them, and sees what df in the pod sees', async function () {
    const s = stack();
    const context = await shipped();
    assert.equal(context.mount.readOnly, true, 'kubelet is mounted read-only');
    const result = await probe(s, namespace!.name, 'shipped', context, volumePath);
    assert.equal(result.exitCode, 0, `statfs failed under the shipped context: ${result.statfs}`);
    assert.equal(result.capEff, '0000000000000000', 'the shipped context runs without any effective capability');
    assert.notEqual(result.readExitCode, 0, "the agent cannot read PostgreSQL's private files");
    assert.notEqual(result.writeExitCode, 0, "the agent cannot create files in PostgreSQL's data directory");
    const [blockSize, blocks, , available] = result.statfs.split(' ').map(Number);
    const df = await dfInPod(s, namespace!.name, instance!.name, dataMountPath);
    assert.equal(blockSize! * blocks!, df.totalBytes);
    assert.equal(blockSize! * available!, df.availableBytes);
  });
});
