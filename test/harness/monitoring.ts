/**
 * The monitoring component (daemonset/monitoring/) as the tests read it: its ServiceMonitors, the Services they select,
 * the Prometheus patch that mounts their token, the alert rules and the dashboard; and the translation of a
 * ServiceMonitor into a plain Prometheus scrape configuration with static targets, as the Prometheus Operator would
 * generate it (scheme, path, honor_labels, bearer token file, TLS CA and server name), so that a real Prometheus can
 * scrape the product with exactly the shipped authentication settings.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse } from 'yaml';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const componentDir = path.join(repoRoot, 'daemonset/monitoring');

interface Metadata {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
}

export interface SecretKeyRef {
  name: string;
  key: string;
}

export interface MonitorEndpoint {
  port: string;
  scheme?: 'http' | 'https';
  path?: string;
  interval?: string;
  honorLabels?: boolean;
  bearerTokenFile?: string;
  tlsConfig?: { ca?: { secret?: SecretKeyRef }; serverName?: string; insecureSkipVerify?: boolean };
}

export interface ServiceMonitor {
  kind: 'ServiceMonitor';
  metadata: Metadata;
  spec: { selector: { matchLabels: Record<string, string> }; endpoints: MonitorEndpoint[]; jobLabel?: string };
}

export interface Service {
  kind: 'Service';
  metadata: Metadata;
  spec: { ports: { name: string; port: number }[] };
}

export interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RuleSpec {
  groups: { name: string; rules: AlertRule[] }[];
}

export interface DashboardPanel {
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: { expr: string; instant?: boolean; refId: string }[];
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: DashboardPanel[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
}

export interface PrometheusPatch {
  spec: {
    volumes: { name: string; projected?: { sources: { serviceAccountToken?: { audience: string; expirationSeconds?: number; path: string } }[] } }[];
    volumeMounts: { name: string; mountPath: string }[];
  };
}

export interface Component {
  kustomization: { kind: string; resources: string[]; configMapGenerator: { name: string; namespace?: string; files: string[]; options?: { labels?: Record<string, string> } }[] };
  monitors: ServiceMonitor[];
  /** The Services of the install and of the component. */
  services: Service[];
  rules: RuleSpec;
  dashboard: Dashboard;
  prometheusPatch: PrometheusPatch;
  /** Every object of the component's resources, in file order. */
  objects: { kind: string; metadata: Metadata }[];
}

async function documents(file: string): Promise<{ kind: string; metadata: Metadata }[]> {
  return parseAllDocuments(await readFile(file, 'utf8')).map((doc) => doc.toJS() as { kind: string; metadata: Metadata } | null)
    .filter((obj): obj is { kind: string; metadata: Metadata } => obj !== null);
}

export async function loadComponent(): Promise<Component> {
  const kustomization = parse(await readFile(path.join(componentDir, 'kustomization.yaml'), 'utf8')) as Component['kustomization'];
  const objects = (await Promise.all(kustomization.resources.map((file) => documents(path.join(componentDir, file))))).flat();
  const installServices = (await documents(path.join(repoRoot, 'daemonset/service.yaml'))).filter((o) => o.kind === 'Service');
  const rule = objects.find((o) => o.kind === 'PrometheusRule') as unknown as { spec: RuleSpec } | undefined;
  if (!rule) throw new Error('the component has no PrometheusRule');
  return {
    kustomization,
    objects,
    monitors: objects.filter((o) => o.kind === 'ServiceMonitor') as unknown as ServiceMonitor[],
    services: [...installServices, ...objects.filter((o) => o.kind === 'Service')] as unknown as Service[],
    rules: rule.spec,
    dashboard: JSON.parse(await readFile(path.join(componentDir, 'dashboard.json'), 'utf8')) as Dashboard,
    prometheusPatch: parse(await readFile(path.join(componentDir, 'prometheus-token.yaml'), 'utf8')) as PrometheusPatch,
  };
}

export function alerts(rules: RuleSpec): AlertRule[] {
  return rules.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined);
}

/** The Service a ServiceMonitor selects, and its port of the endpoint's name: the job label is the Service's name. */
export function selectedService(component: Component, monitor: ServiceMonitor): Service {
  const { matchLabels } = monitor.spec.selector;
  const matches = component.services.filter((s) => s.metadata.namespace === monitor.metadata.namespace
    && Object.entries(matchLabels).every(([k, v]) => s.metadata.labels?.[k] === v)
    && monitor.spec.endpoints.every((e) => s.spec.ports.some((p) => p.name === e.port)));
  if (matches.length !== 1) throw new Error(`ServiceMonitor ${monitor.metadata.name} selects ${matches.length} Services with its ports`);
  return matches[0] as Service;
}

/** The audience of the projected token mounted where `file` points, from the Prometheus patch. */
export function tokenAudienceFor(patch: PrometheusPatch, file: string): string {
  for (const mount of patch.spec.volumeMounts) {
    const volume = patch.spec.volumes.find((v) => v.name === mount.name);
    for (const source of volume?.projected?.sources ?? []) {
      const token = source.serviceAccountToken;
      if (token && path.posix.join(mount.mountPath, token.path) === file) return token.audience;
    }
  }
  throw new Error(`the Prometheus patch mounts no ServiceAccount token at ${file}`);
}

/** What the test ground supplies for an endpoint: where its targets are and files for what Kubernetes would mount. */
export interface ScrapeInputs {
  targets: string[];
  /** The file holding the token the Prometheus patch mounts at `bearerTokenFile`. */
  tokenFile: (mountedPath: string) => string;
  /** A file holding the given key of the Secret (in the ServiceMonitor's namespace). */
  secretFile: (ref: SecretKeyRef) => string;
  /** Override of the scrape interval (the shipped 30 s makes a slow test). */
  interval?: string;
}

export interface ScrapeConfig {
  job_name: string;
  scheme: string;
  metrics_path: string;
  scrape_interval?: string;
  honor_labels: boolean;
  authorization?: { type: 'Bearer'; credentials_file: string };
  tls_config?: { ca_file?: string; server_name?: string; insecure_skip_verify?: boolean };
  static_configs: { targets: string[] }[];
}

/** One scrape configuration per endpoint, as the Prometheus Operator makes them (job: the selected Service's name). */
export function scrapeConfigs(component: Component, monitor: ServiceMonitor, inputs: ScrapeInputs): ScrapeConfig[] {
  const service = selectedService(component, monitor);
  return monitor.spec.endpoints.map((endpoint) => {
    const config: ScrapeConfig = {
      job_name: monitor.spec.jobLabel ?? service.metadata.name,
      scheme: endpoint.scheme ?? 'http',
      metrics_path: endpoint.path ?? '/metrics',
      honor_labels: endpoint.honorLabels ?? false,
      static_configs: [{ targets: inputs.targets }],
    };
    const interval = inputs.interval ?? endpoint.interval;
    if (interval !== undefined) config.scrape_interval = interval;
    if (endpoint.bearerTokenFile !== undefined) config.authorization = { type: 'Bearer', credentials_file: inputs.tokenFile(endpoint.bearerTokenFile) };
    const tls = endpoint.tlsConfig;
    if (tls) {
      config.tls_config = {};
      if (tls.ca?.secret) config.tls_config.ca_file = inputs.secretFile(tls.ca.secret);
      if (tls.serverName !== undefined) config.tls_config.server_name = tls.serverName;
      if (tls.insecureSkipVerify !== undefined) config.tls_config.insecure_skip_verify = tls.insecureSkipVerify;
    }
    return config;
  });
}

/** Every PromQL expression of the dashboard, its variables replaced by what selects everything. */
export function dashboardQueries(dashboard: Dashboard): { panel: string; expr: string; instant: boolean }[] {
  return dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((t) => ({ panel: panel.title, expr: expandVariables(t.expr), instant: t.instant === true })));
}

/** `$namespace` and the other multi-value variables select everything (`.*`, their allValue); `$__rate_interval` is 1m. */
export function expandVariables(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replace(/\$\{?([a-z_]+)\}?/g, '.*');
}

/** The dashboard's query variables as (metric selector, label) pairs: `label_values(selector, label)`. */
export function variableQueries(dashboard: Dashboard): { name: string; selector: string; label: string }[] {
  return dashboard.templating.list.filter((v) => v.type === 'query').map((v) => {
    const query = typeof v.query === 'string' ? v.query : v.query.query;
    const match = /^label_values\((.+),\s*([a-z_]+)\)$/.exec(query);
    if (!match) throw new Error(`variable ${v.name}: not label_values(selector, label): ${query}`);
    return { name: v.name, selector: expandVariables(match[1] ?? ''), label: match[2] ?? '' };
  });
}

/** Metric names an expression refers to (the product's, `cnpg_*`), histogram series reduced to their family. */
export function productMetricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\bcnpg_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')))];
}
