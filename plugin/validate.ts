/**
 * `kubectl cnpg storage validate -f <file|dir|->...`: the checks of the API server and of the controller, offline, for CI
 * pipelines. Every DynamicStorage in the input is validated; CNPG Clusters found in the same input are used for the
 * checks that need one (the Cluster exists, has the tablespaces and WAL storage managed, its sizes lie within the bounds).
 */
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { dynamicStorageApiVersion, dynamicStorageKind } from '../shared/api/dynamicstorage.generated.ts';
import { formatProblem, validateDynamicStorage, type CnpgCluster, type ValidationProblem } from '../controller/validation/index.ts';
import { isObject } from '../shared/objects.ts';
import { UsageError, type CliIo, type Subcommand } from './command.ts';

const cnpgApiVersion = 'postgresql.cnpg.io/v1';

export interface ValidateOptions {
  files: string[];
  output: 'text' | 'json';
  /** Check each DynamicStorage against its Cluster, which must then be in the input. */
  requireCluster: boolean;
  namespace: string;
}

type Json = Record<string, unknown>;

interface InputDocument {
  source: string;
  object: Json;
}

export interface ObjectReport {
  source: string;
  namespace: string;
  name: string;
  valid: boolean;
  problems: (ValidationProblem & { text: string })[];
}

const usage = `Usage: kubectl cnpg storage validate -f <file|directory|-> [-f ...] [options]

Checks DynamicStorage objects offline: everything the API server checks at admission, plus what only the controller
can check (cron schedule, time zone). CNPG Clusters in the same input are used to check that the Cluster exists, has
the WAL storage and tablespaces managed, and that its sizes lie within [request, limit].

Options:
  -f, --filename <path>   YAML or JSON file, directory (its *.yaml, *.yml, *.json files) or - for standard input
  -o, --output text|json  output format (default text)
  -n, --namespace <ns>    namespace of objects that do not set one (default "default")
      --require-cluster   fail when a DynamicStorage's Cluster is not in the input
  -h, --help              this help

Exit status: 0 when every object is valid, 1 when any has a problem, 2 on wrong usage or unreadable input.
`;

function takeValue(args: readonly string[], index: number, flag: string): string {
  const value = args[index + 1];
  if (value === undefined || (value.startsWith('-') && value !== '-')) throw new UsageError(`${flag} needs a value`);
  return value;
}

export function parseValidateArgs(args: readonly string[]): ValidateOptions {
  const options: ValidateOptions = { files: [], output: 'text', requireCluster: false, namespace: 'default' };
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] ?? '';
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = takeValue(args, i, flag);
      i += 1;
      return next;
    };
    if (flag === '-f' || flag === '--filename') options.files.push(value());
    else if (flag === '-n' || flag === '--namespace') options.namespace = value();
    else if (flag === '--require-cluster') options.requireCluster = true;
    else if (flag === '-o' || flag === '--output') {
      const output = value();
      if (output !== 'text' && output !== 'json') throw new UsageError(`--output must be text or json, not "${output}"`);
      options.output = output;
    } else throw new UsageError(`unknown argument "${arg}"`);
  }
  if (options.files.length === 0) throw new UsageError('no input: give at least one -f <file|directory|->');
  return options;
}

const inputExtensions = new Set(['.yaml', '.yml', '.json']);

async function readInputs(files: readonly string[], io: CliIo): Promise<{ source: string; text: string }[]> {
  const inputs: { source: string; text: string }[] = [];
  for (const file of files) {
    if (file === '-') {
      inputs.push({ source: '<stdin>', text: await io.readStdin() });
      continue;
    }
    const entries = await io.listDirectory(file);
    const targets = entries ? entries.filter((entry) => inputExtensions.has(path.extname(entry))) : [file];
    for (const target of targets) {
      const text = await io.readFile(target).catch((err: unknown) => {
        throw new UsageError(`cannot read ${target}: ${err instanceof Error ? err.message : String(err)}`);
      });
      inputs.push({ source: target, text });
    }
  }
  return inputs;
}

function parseDocuments(source: string, text: string): { documents: InputDocument[]; errors: string[] } {
  const documents: InputDocument[] = [];
  const errors: string[] = [];
  for (const [index, document] of parseAllDocuments(text).entries()) {
    if (document.errors.length > 0) {
      errors.push(`${source}: document ${index + 1} is not valid YAML: ${document.errors.map((e) => e.message).join('; ')}`);
      continue;
    }
    const object: unknown = document.toJS();
    if (isObject(object)) documents.push({ source, object });
  }
  return { documents, errors };
}

function identity(object: Json, defaultNamespace: string): { namespace: string; name: string } {
  const metadata = (typeof object.metadata === 'object' && object.metadata !== null ? object.metadata : {}) as Json;
  return {
    namespace: typeof metadata.namespace === 'string' ? metadata.namespace : defaultNamespace,
    name: typeof metadata.name === 'string' ? metadata.name : '<unnamed>',
  };
}

function clusterNameOf(object: Json): string | undefined {
  const spec = object.spec as { cluster?: { name?: unknown } } | undefined;
  return typeof spec?.cluster?.name === 'string' ? spec.cluster.name : undefined;
}

/** Validates every DynamicStorage among `documents`; pure, for tests. */
export function validateDocuments(documents: readonly InputDocument[], options: Pick<ValidateOptions, 'requireCluster' | 'namespace'>): ObjectReport[] {
  const clusters = new Map<string, CnpgCluster>();
  for (const { object } of documents) {
    if (object.apiVersion === cnpgApiVersion && object.kind === 'Cluster') {
      const { namespace, name } = identity(object, options.namespace);
      clusters.set(`${namespace}/${name}`, object);
    }
  }
  const reports: ObjectReport[] = [];
  for (const { source, object } of documents) {
    if (object.apiVersion !== dynamicStorageApiVersion || object.kind !== dynamicStorageKind) continue;
    const { namespace, name } = identity(object, options.namespace);
    const clusterName = clusterNameOf(object);
    const cluster = clusterName === undefined ? undefined : clusters.get(`${namespace}/${clusterName}`);
    const context = cluster ? { cluster } : options.requireCluster ? { cluster: null } : {};
    const withNamespace = { ...object, metadata: { ...(object.metadata as Json | undefined), namespace } };
    const problems = validateDynamicStorage(withNamespace, context).map((p) => ({ ...p, text: formatProblem(p) }));
    reports.push({ source, namespace, name, valid: problems.length === 0, problems });
  }
  return reports;
}

export function renderText(reports: readonly ObjectReport[]): string {
  const lines: string[] = [];
  for (const report of reports) {
    const subject = `${report.source}: DynamicStorage ${report.namespace}/${report.name}`;
    if (report.valid) {
      lines.push(`${subject}: valid`);
      continue;
    }
    lines.push(`${subject}: ${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}`);
    for (const p of report.problems) lines.push(`  ${p.text} [${p.code}]`);
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

export async function runValidate(args: readonly string[], io: CliIo): Promise<number> {
  const options = parseValidateArgs(args);
  const inputs = await readInputs(options.files, io);
  const documents: InputDocument[] = [];
  const yamlErrors: string[] = [];
  for (const { source, text } of inputs) {
    const parsed = parseDocuments(source, text);
    documents.push(...parsed.documents);
    yamlErrors.push(...parsed.errors);
  }
  const reports = validateDocuments(documents, options);
  if (options.output === 'json') {
    io.stdout(`${JSON.stringify({ valid: yamlErrors.length === 0 && reports.every((r) => r.valid), errors: yamlErrors, objects: reports }, null, 2)}\n`);
  } else {
    io.stdout(renderText(reports));
    for (const error of yamlErrors) io.stderr(`${error}\n`);
    if (reports.length === 0 && yamlErrors.length === 0) io.stderr(`no ${dynamicStorageKind} objects in the input\n`);
  }
  return yamlErrors.length > 0 || reports.some((r) => !r.valid) ? 1 : 0;
}

export const validateSubcommand: Subcommand = {
  name: 'validate',
  summary: 'check DynamicStorage files offline, as the API server and the controller would',
  usage,
  run: runValidate,
};
