/**
 * A real Kubernetes control plane for integration tests: etcd, kube-apiserver and kube-controller-manager built from
 * Kubernetes' own Go modules (hack/controlplane/build.sh), on loopback, with free ports and a private temp dir.
 *
 * - RBAC authorization, client-certificate users, ServiceAccount tokens from the TokenRequest API.
 * - kube-controller-manager runs the controllers that work without a kubelet (GC, namespace, PV binder, protections,
 *   ServiceAccounts, root CA publisher).
 * - stop() leaves nothing behind: processes (whole process groups), ports and the temp dir; processes are also killed when
 *   the test process exits or is interrupted.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { createCertificateAuthority, createSigningKey, issueCertificate, type CertificatePaths } from './pki.ts';
import { freePort } from './ports.ts';
import { startProcess, type ManagedProcess } from './processes.ts';

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const kubeControllers = [
  'garbage-collector-controller',
  'namespace-controller',
  'persistentvolume-binder-controller',
  'persistentvolumeclaim-protection-controller',
  'persistentvolume-protection-controller',
  'serviceaccount-controller',
  'root-ca-certificate-publisher-controller',
];

export interface ControlPlaneVersions {
  kubernetes: string;
  etcd: string;
}

export interface TlsMaterial {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** Path of an admin (system:masters) kubeconfig file. */
  readonly kubeconfigPath: string;
  /** The admin KubeConfig, loaded. */
  readonly kubeConfig: k8s.KubeConfig;
  /** The temp dir holding data, certificates and logs. */
  readonly dir: string;
  readonly binDir: string;
  readonly versions: ControlPlaneVersions;
  /** PEM of the CA that signed the API server's serving certificate. */
  readonly caPem: string;
  /** A bearer token for a ServiceAccount, from the TokenRequest API (the ServiceAccount must exist). */
  /** `audiences`: the token's audiences (default: the API server's own). */
  tokenFor(namespace: string, serviceAccount: string, expirationSeconds?: number, audiences?: string[]): Promise<string>;
  /** A KubeConfig that authenticates as that ServiceAccount. */
  kubeConfigFor(namespace: string, serviceAccount: string): Promise<k8s.KubeConfig>;
  /** A serving certificate for https://127.0.0.1 (and localhost), e.g. for an admission webhook or an agent endpoint. */
  servingCertificate(name: string): Promise<TlsMaterial>;
  /** Stop and start kube-apiserver on the same port (etcd keeps the data). */
  restartApiServer(downtimeMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface ControlPlaneOptions {
  /** Run kube-controller-manager beside the API server (default true). */
  controllerManager?: boolean;
  /** Where the binaries are; default: built or found by hack/controlplane/build.sh. */
  binDir?: string;
  /**
   * The API server reaches a Service (an admission webhook's, say) at an address of its EndpointSlice instead of its
   * ClusterIP (`--enable-aggregator-routing`): there is no kube-proxy here. Default false.
   */
  endpointRouting?: boolean;
}

export async function controlPlaneBinDir(): Promise<string> {
  const script = path.join(repoRoot, 'hack/controlplane/build.sh');
  const { stdout } = await run(script, [], { maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim().split('\n').pop() ?? '';
}

export async function controlPlaneVersions(binDir: string): Promise<ControlPlaneVersions> {
  const api = await run(path.join(binDir, 'kube-apiserver'), ['--version']);
  const etcd = await run(path.join(binDir, 'etcd'), ['--version']);
  return {
    kubernetes: api.stdout.trim().replace(/^Kubernetes\s+/, ''),
    etcd: /etcd Version:\s*(\S+)/.exec(etcd.stdout)?.[1] ?? etcd.stdout.trim(),
  };
}

interface Pki {
  ca: CertificatePaths;
  apiServing: CertificatePaths;
  admin: CertificatePaths;
  serviceAccount: { privateKey: string; publicKey: string };
}

async function createPki(dir: string): Promise<Pki> {
  const ca = await createCertificateAuthority(dir, 'ca');
  const [apiServing, admin, serviceAccount] = await Promise.all([
    issueCertificate(dir, ca, 'apiserver', {
      commonName: 'kube-apiserver', serverAuth: true, ipAddresses: ['127.0.0.1', '10.0.0.1'],
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
    }),
    issueCertificate(dir, ca, 'admin', { commonName: 'admin', organizations: ['system:masters'], clientAuth: true }),
    createSigningKey(dir, 'service-account'),
  ]);
  return { ca, apiServing, admin, serviceAccount };
}

function kubeconfigYaml(server: string, caPem: string, certPem: string, keyPem: string): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return [
    'apiVersion: v1', 'kind: Config', 'current-context: local',
    'clusters:', '- name: local', '  cluster:', `    server: ${server}`, `    certificate-authority-data: ${b64(caPem)}`,
    'users:', '- name: admin', '  user:', `    client-certificate-data: ${b64(certPem)}`, `    client-key-data: ${b64(keyPem)}`,
    'contexts:', '- name: local', '  context:', '    cluster: local', '    user: admin', '',
  ].join('\n');
}

async function waitFor(description: string, check: () => Promise<boolean>, timeoutMs: number, onTimeout: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${description} not ready after ${timeoutMs} ms\n${await onTimeout()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function httpsGetStatus(url: string, tls: { ca: string; cert: string; key: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ...tls, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => { req.destroy(new Error('timeout')); });
    req.on('error', reject);
  });
}

class LocalControlPlane implements ControlPlane {
  readonly kubeConfig = new k8s.KubeConfig();
  caPem = '';
  versions: ControlPlaneVersions = { kubernetes: '', etcd: '' };
  private readonly processes = new Map<string, ManagedProcess>();
  private apiArgs: string[] = [];
  private pki: Pki | undefined;
  private tlsForProbe = { ca: '', cert: '', key: '' };
  private stopped = false;

  readonly dir: string;
  readonly binDir: string;
  private readonly apiPort: number;

  constructor(dir: string, binDir: string, apiPort: number) {
    this.dir = dir;
    this.binDir = binDir;
    this.apiPort = apiPort;
  }

  get server(): string {
    return `https://127.0.0.1:${this.apiPort}`;
  }

  get kubeconfigPath(): string {
    return path.join(this.dir, 'admin.kubeconfig');
  }

  async start(options: ControlPlaneOptions): Promise<void> {
    const pkiDir = path.join(this.dir, 'pki');
    await mkdir(pkiDir);
    this.pki = await createPki(pkiDir);
    const pki = this.pki;
    this.caPem = await readFile(pki.ca.cert, 'utf8');
    this.tlsForProbe = { ca: this.caPem, cert: await readFile(pki.admin.cert, 'utf8'), key: await readFile(pki.admin.key, 'utf8') };
    await writeFile(this.kubeconfigPath, kubeconfigYaml(this.server, this.caPem, this.tlsForProbe.cert, this.tlsForProbe.key));
    this.kubeConfig.loadFromFile(this.kubeconfigPath);
    this.versions = await controlPlaneVersions(this.binDir);

    await this.startEtcd();
    this.apiArgs = [...this.apiServerArgs(pki), ...(options.endpointRouting ? ['--enable-aggregator-routing=true'] : [])];
    await this.startApiServer();
    if (options.controllerManager !== false) await this.startControllerManager(pki);
  }

  private async startEtcd(): Promise<void> {
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const etcd = startProcess('etcd', path.join(this.binDir, 'etcd'), [
      '--name=default', `--data-dir=${path.join(this.dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`, `--initial-advertise-peer-urls=${peerUrl}`, `--initial-cluster=default=${peerUrl}`,
      '--unsafe-no-fsync', '--log-level=warn',
    ], path.join(this.dir, 'etcd.log'));
    this.processes.set('etcd', etcd);
    this.etcdUrl = etcdUrl;
    await waitFor('etcd', async () => {
      if (etcd.exited()) throw new Error('etcd exited');
      const res = await fetch(`${etcdUrl}/health`);
      return res.ok;
    }, 30_000, () => etcd.tail());
  }

  private etcdUrl = '';

  private apiServerArgs(pki: Pki): string[] {
    return [
      `--etcd-servers=${this.etcdUrl}`,
      `--cert-dir=${path.join(this.dir, 'pki')}`,
      `--tls-cert-file=${pki.apiServing.cert}`, `--tls-private-key-file=${pki.apiServing.key}`,
      `--secure-port=${this.apiPort}`, '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1',
      '--service-cluster-ip-range=10.0.0.0/24', '--allow-privileged=true', '--authorization-mode=RBAC',
      `--client-ca-file=${pki.ca.cert}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.serviceAccount.publicKey}`,
      `--service-account-signing-key-file=${pki.serviceAccount.privateKey}`,
      '--api-audiences=https://kubernetes.default.svc.cluster.local',
      '--enable-priority-and-fairness=false',
      '--v=1',
    ];
  }

  private async startApiServer(): Promise<void> {
    const api = startProcess('kube-apiserver', path.join(this.binDir, 'kube-apiserver'), this.apiArgs, path.join(this.dir, 'kube-apiserver.log'));
    this.processes.set('kube-apiserver', api);
    await waitFor('kube-apiserver', async () => {
      if (api.exited()) throw new Error('kube-apiserver exited');
      return (await httpsGetStatus(`${this.server}/readyz`, this.tlsForProbe)) === 200;
    }, 90_000, () => api.tail());
  }

  private async startControllerManager(pki: Pki): Promise<void> {
    const kcm = startProcess('kube-controller-manager', path.join(this.binDir, 'kube-controller-manager'), [
      `--kubeconfig=${this.kubeconfigPath}`,
      `--controllers=${kubeControllers.join(',')}`,
      `--service-account-private-key-file=${pki.serviceAccount.privateKey}`,
      `--root-ca-file=${pki.ca.cert}`,
      '--leader-elect=false', '--secure-port=0', '--concurrent-gc-syncs=5', '--v=1',
    ], path.join(this.dir, 'kube-controller-manager.log'));
    this.processes.set('kube-controller-manager', kcm);
    // Ready when the ServiceAccount controller has created the default ServiceAccount.
    const core = this.kubeConfig.makeApiClient(k8s.CoreV1Api);
    await waitFor('kube-controller-manager', async () => {
      if (kcm.exited()) throw new Error('kube-controller-manager exited');
      await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
      return true;
    }, 60_000, () => kcm.tail());
  }

  async restartApiServer(downtimeMs = 0): Promise<void> {
    await this.processes.get('kube-apiserver')?.stop();
    if (downtimeMs > 0) await new Promise((resolve) => setTimeout(resolve, downtimeMs));
    await this.startApiServer();
  }

  async tokenFor(namespace: string, serviceAccount: string, expirationSeconds = 3600, audiences: string[] = []): Promise<string> {
    const core = this.kubeConfig.makeApiClient(k8s.CoreV1Api);
    const response = await core.createNamespacedServiceAccountToken({
      name: serviceAccount, namespace, body: { spec: { audiences, expirationSeconds } },
    });
    const token = response.status?.token;
    if (!token) throw new Error(`TokenRequest for ${namespace}/${serviceAccount} returned no token`);
    return token;
  }

  async kubeConfigFor(namespace: string, serviceAccount: string): Promise<k8s.KubeConfig> {
    const token = await this.tokenFor(namespace, serviceAccount);
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'local', server: this.server, caData: Buffer.from(this.caPem).toString('base64') }],
      users: [{ name: `${namespace}/${serviceAccount}`, token }],
      contexts: [{ name: 'sa', cluster: 'local', user: `${namespace}/${serviceAccount}` }],
      currentContext: 'sa',
    });
    return kc;
  }

  async servingCertificate(name: string): Promise<TlsMaterial> {
    if (!this.pki) throw new Error('control plane not started');
    const dir = path.join(this.dir, 'pki');
    const issued = await issueCertificate(dir, this.pki.ca, `serving-${name}`, {
      commonName: name, serverAuth: true, ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'],
    });
    return { caPem: this.caPem, certPem: await readFile(issued.cert, 'utf8'), keyPem: await readFile(issued.key, 'utf8') };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const name of ['kube-controller-manager', 'kube-apiserver', 'etcd']) {
      await this.processes.get(name)?.stop();
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Starts a control plane; on any failure during start everything already started is stopped again. */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const binDir = options.binDir ?? await controlPlaneBinDir();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cnpg-ds-controlplane-'));
  const plane = new LocalControlPlane(dir, binDir, await freePort());
  try {
    await plane.start(options);
  } catch (err) {
    await plane.stop();
    throw err;
  }
  return plane;
}
