/**
 * Generates the TypeScript side of the DynamicStorage API from the CRD, which is the single source of truth:
 *
 * - shared/api/dynamicstorage.generated.ts: interfaces with doc comments taken from the schema descriptions, string
 *   literal unions (and value lists) for enums, the defaults the API server fills in, and the resource's names;
 * - shared/api/dynamicstorage.schema.generated.ts: the OpenAPI schema itself, for offline validation.
 *
 * Usage: node hack/gen-api-types.ts           -> writes the files
 *        node hack/gen-api-types.ts --check   -> exits 1 when a file is stale
 *
 * Object schemas get interface names from `typeNames` (keyed by property name, `name[]` for array items and `name{}`
 * for map values). Two places sharing a name must have identical schemas (descriptions at the place of use aside), so
 * the data, WAL and tablespace policies cannot drift apart either.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { JsonSchema } from '../shared/api/json-schema.ts';

export type { JsonSchema };

export const crdPath = 'crds/dynamicstorage.cnpg.io_dynamicstorages.yaml';
export const typesPath = 'shared/api/dynamicstorage.generated.ts';
export const schemaPath = 'shared/api/dynamicstorage.schema.generated.ts';

const typeNames: Record<string, string> = {
  '': 'DynamicStorage',
  spec: 'DynamicStorageSpec',
  cluster: 'ClusterReference',
  storage: 'VolumePolicy',
  walStorage: 'VolumePolicy',
  'tablespaces[]': 'TablespacePolicy',
  maintenanceWindow: 'MaintenanceWindow',
  emergencyGrow: 'EmergencyGrow',
  growth: 'GrowthPolicy',
  status: 'DynamicStorageStatus',
  'conditions[]': 'Condition',
  storageSizing: 'StorageSizingStatus',
  data: 'VolumeSizingStatus',
  wal: 'VolumeSizingStatus',
  'tablespaces{}': 'VolumeSizingStatus',
  lastAction: 'SizingAction',
  'recentActions[]': 'SizingAction',
  budget: 'BudgetStatus',
  'instances{}': 'InstanceVolumeStatus',
  lastValidPolicy: 'LastValidPolicy',
};

/** Enums worth a name of their own: `<Type>.<property>` -> [type alias, constant holding the values]. */
const enumNames: Record<string, [string, string]> = {
  'VolumeSizingStatus.state': ['VolumeSizingState', 'volumeSizingStates'],
  'SizingAction.kind': ['SizingActionKind', 'sizingActionKinds'],
  'SizingAction.result': ['SizingActionResult', 'sizingActionResults'],
  'GrowthPolicy.roundUpTo': ['SizeRounding', 'sizeRoundings'],
  'Condition.status': ['ConditionStatus', 'conditionStatuses'],
  'DynamicStorageStatus.protection': ['PolicyProtection', 'policyProtections'],
};

interface Crd {
  spec: {
    group: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames?: string[] };
    versions: { name: string; storage: boolean; schema: { openAPIV3Schema: JsonSchema } }[];
  };
}

export function storageVersionSchema(crd: Crd): { version: string; schema: JsonSchema } {
  const version = crd.spec.versions.find((v) => v.storage);
  if (!version) throw new Error(`${crdPath}: no storage version`);
  return { version: version.name, schema: version.schema.openAPIV3Schema };
}

function withoutDescription(schema: JsonSchema): string {
  const { description: _description, ...rest } = schema;
  return JSON.stringify(rest);
}

/** Doc comments of types used in several places, where the schema's description speaks of one place only. */
const typeDocs: Record<string, string> = {
  VolumePolicy: 'The sizing policy of one volume role: the data volumes, the WAL volumes or the volumes of one tablespace.',
  VolumeSizingStatus: 'The sizing state of the volumes of one role (data, WAL or one tablespace), across all instances.',
  SizingAction: 'One resize operation on the volumes of a role.',
};

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const paragraph of text.split('\n')) {
    let line = '';
    for (const word of paragraph.split(/\s+/).filter((w) => w !== '')) {
      if (line !== '' && line.length + 1 + word.length > width) {
        lines.push(line);
        line = word;
      } else {
        line = line === '' ? word : `${line} ${word}`;
      }
    }
    lines.push(line);
  }
  return lines;
}

function docComment(text: string | undefined, indent: string, extra: string[] = []): string {
  const width = 116 - indent.length;
  const lines = [...(text ? wrap(text, width) : []), ...extra];
  if (lines.length === 0) return '';
  return `${indent}/**\n${lines.map((l) => `${indent} * ${l.replace(/\*\//g, '*\\/')}`.trimEnd()).join('\n')}\n${indent} */\n`;
}

function requiredByRule(schema: JsonSchema): { required: Set<string>; forbidden: Set<string> } {
  const required = new Set(schema.required ?? []);
  const forbidden = new Set<string>();
  for (const rule of schema['x-kubernetes-validations'] ?? []) {
    const has = /^has\(self\.(\w+)\)$/.exec(rule.rule);
    if (has?.[1]) required.add(has[1]);
    const hasNot = /^!has\(self\.(\w+)\)$/.exec(rule.rule);
    if (hasNot?.[1]) forbidden.add(hasNot[1]);
  }
  return { required, forbidden };
}

function camel(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1);
}

class Generator {
  private readonly interfaces = new Map<string, { schema: JsonSchema; where: string; text: string }>();
  private readonly enums: string[] = [];
  private readonly defaults: string[] = [];

  objectType(schema: JsonSchema, key: string, where: string): string {
    if (where === 'metadata') return 'ObjectMeta';
    const name = typeNames[key];
    if (!name) throw new Error(`${crdPath}: object at ${where} has no TypeScript name; add "${key}" to typeNames in hack/gen-api-types.ts`);
    const seen = this.interfaces.get(name);
    if (seen) {
      if (withoutDescription(seen.schema) !== withoutDescription(schema)) {
        throw new Error(`${crdPath}: ${where} and ${seen.where} are both ${name} but their schemas differ; keep them identical`);
      }
      return name;
    }
    this.interfaces.set(name, { schema, where, text: '' });
    const text = this.renderInterface(name, schema, where);
    this.interfaces.set(name, { schema, where, text });
    return name;
  }

  private renderInterface(name: string, schema: JsonSchema, where: string): string {
    const { required, forbidden } = requiredByRule(schema);
    const members: string[] = [];
    const defaults: string[] = [];
    for (const [prop, propSchema] of Object.entries(schema.properties ?? {})) {
      const childWhere = where ? `${where}.${prop}` : prop;
      const extra: string[] = [];
      if (propSchema.default !== undefined) {
        extra.push(`Default: ${JSON.stringify(propSchema.default)}.`);
        defaults.push(`  ${prop}: ${JSON.stringify(propSchema.default)},`);
      }
      const type = forbidden.has(prop) ? 'never' : this.typeOf(propSchema, prop, childWhere, `${name}.${prop}`);
      const optional = required.has(prop) ? '' : '?';
      members.push(`${docComment(propSchema.description, '  ', extra)}  ${prop}${optional}: ${type};`);
    }
    if (defaults.length > 0) {
      this.defaults.push(`/** What the API server fills in for a ${name} that leaves these fields out. */\nexport const ${camel(name)}Defaults = {\n${defaults.join('\n')}\n} as const satisfies Partial<${name}>;\n`);
    }
    return `${docComment(typeDocs[name] ?? schema.description, '')}export interface ${name} {\n${members.join('\n')}\n}\n`;
  }

  private typeOf(schema: JsonSchema, key: string, where: string, enumKey: string): string {
    if (schema.enum) return this.enumType(schema.enum, enumKey);
    switch (schema.type) {
      case 'string': return 'string';
      case 'integer':
      case 'number': return 'number';
      case 'boolean': return 'boolean';
      case 'array': {
        if (!schema.items) throw new Error(`${crdPath}: array at ${where} has no items`);
        const item = this.typeOf(schema.items, `${key}[]`, `${where}[]`, `${enumKey}[]`);
        return /^\w+$/.test(item) ? `${item}[]` : `(${item})[]`;
      }
      case 'object': {
        if (schema['x-kubernetes-preserve-unknown-fields'] === true && schema.properties === undefined) return 'Record<string, unknown>';
        if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
          return `Record<string, ${this.typeOf(schema.additionalProperties, `${key}{}`, `${where}{}`, `${enumKey}{}`)}>`;
        }
        return this.objectType(schema, key, where);
      }
      default: throw new Error(`${crdPath}: ${where} has unsupported type ${String(schema.type)}`);
    }
  }

  private enumType(values: unknown[], enumKey: string): string {
    const union = values.map((v) => JSON.stringify(v)).join(' | ');
    const named = enumNames[enumKey];
    if (!named) return union;
    const [alias, constant] = named;
    if (!this.enums.some((e) => e.includes(`export type ${alias} `))) {
      this.enums.push(`export const ${constant} = [${values.map((v) => JSON.stringify(v)).join(', ')}] as const;\nexport type ${alias} = (typeof ${constant})[number];\n`);
    }
    return alias;
  }

  render(): { interfaces: string; enums: string; defaults: string } {
    return {
      interfaces: [...this.interfaces.values()].map((i) => i.text).join('\n'),
      enums: this.enums.join('\n'),
      defaults: this.defaults.join('\n'),
    };
  }
}

const header = `// Code generated by hack/gen-api-types.ts from ${crdPath}. DO NOT EDIT.\n// Change the CRD, then run: node hack/gen-api-types.ts\n`;

const objectMeta = `/** The parts of Kubernetes object metadata this product reads or writes. */
export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
}
`;

/** Both generated files, from the CRD's text. Pure, so that a test can compare it with what is committed. */
export function generateApiFiles(crdText: string): Record<string, string> {
  const crd = parse(crdText) as Crd;
  const { version, schema } = storageVersionSchema(crd);
  const names = crd.spec.names;
  const generator = new Generator();
  generator.objectType(schema, '', '');
  const parts = generator.render();
  const identity = [
    `export const dynamicStorageGroup = ${JSON.stringify(crd.spec.group)};`,
    `export const dynamicStorageVersion = ${JSON.stringify(version)};`,
    `export const dynamicStorageApiVersion = ${JSON.stringify(`${crd.spec.group}/${version}`)};`,
    `export const dynamicStorageKind = ${JSON.stringify(names.kind)};`,
    `export const dynamicStorageListKind = ${JSON.stringify(names.listKind)};`,
    `export const dynamicStoragePlural = ${JSON.stringify(names.plural)};`,
    `export const dynamicStorageSingular = ${JSON.stringify(names.singular)};`,
    '',
  ].join('\n');
  const list = `/** A list of DynamicStorage objects, as the API server returns it. */
export interface ${names.listKind} {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items: DynamicStorage[];
}
`;
  const types = [header, identity, parts.enums, objectMeta, parts.interfaces, list, parts.defaults].filter((p) => p !== '').join('\n');
  const schemaFile = [
    header,
    `import type { JsonSchema } from './json-schema.ts';\n`,
    `/** The OpenAPI schema of ${names.kind} ${version}, exactly as in the CRD. */`,
    `export const dynamicStorageOpenApiSchema: JsonSchema = ${JSON.stringify(schema, null, 2)};\n`,
  ].join('\n');
  return { [typesPath]: types, [schemaPath]: schemaFile };
}

async function main(): Promise<void> {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const files = generateApiFiles(await readFile(path.join(root, crdPath), 'utf8'));
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [file, content] of Object.entries(files)) {
    const target = path.join(root, file);
    if (check) {
      const current = await readFile(target, 'utf8').catch(() => '');
      if (current !== content) {
        stale += 1;
        console.error(`${file} is stale: run node hack/gen-api-types.ts`);
      }
    } else {
      await writeFile(target, content);
      console.log(`wrote ${file}`);
    }
  }
  if (stale > 0) process.exitCode = 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
