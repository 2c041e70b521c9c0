import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { crdPath, generateApiFiles, schemaPath, typesPath } from '../../../hack/gen-api-types.ts';
import { dynamicStorageOpenApiSchema } from '../../../shared/api/dynamicstorage.schema.generated.ts';
import type { JsonSchema } from '../../../shared/api/json-schema.ts';
import { celRuleImplementations, celRulesOf } from '../../../controller/validation/index.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe('API types generated from the CRD', () => {
  let crdText = '';
  before(async () => {
    crdText = await readFile(path.join(repoRoot, crdPath), 'utf8');
  });

  for (const file of [typesPath, schemaPath]) {
    it(`${file} is up to date with the CRD (else run: node hack/gen-api-types.ts)`, async () => {
      const expected = generateApiFiles(crdText)[file];
      assert.equal(await readFile(path.join(repoRoot, file), 'utf8'), expected);
    });
  }

  it('refuses two places of one type whose schemas differ', () => {
    const crd = parse(crdText) as { spec: { versions: { schema: { openAPIV3Schema: JsonSchema } }[] } };
    const spec = crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
    spec.properties!.walStorage!.properties!.targetBuffer!.maximum = 60;
    assert.throws(() => generateApiFiles(JSON.stringify(crd)), /spec\.walStorage and spec\.storage are both VolumePolicy but their schemas differ/);
  });

  it('refuses an object without a TypeScript name', () => {
    const crd = parse(crdText) as { spec: { versions: { schema: { openAPIV3Schema: JsonSchema } }[] } };
    crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!.properties!.extra = { type: 'object', description: 'x' };
    assert.throws(() => generateApiFiles(JSON.stringify(crd)), /object at spec\.extra has no TypeScript name; add "extra" to typeNames/);
  });

  it('describes every field, so that kubectl explain has something to say', () => {
    const missing: string[] = [];
    const visit = (schema: JsonSchema, where: string): void => {
      for (const [key, child] of Object.entries(schema.properties ?? {})) {
        const at = where === '' ? key : `${where}.${key}`;
        if (at !== 'metadata' && !child.description) missing.push(at);
        visit(child, at);
      }
      if (schema.items) visit(schema.items, `${where}[]`);
      if (typeof schema.additionalProperties === 'object') visit(schema.additionalProperties, `${where}{}`);
    };
    visit(dynamicStorageOpenApiSchema, '');
    assert.deepEqual(missing, []);
  });

  it('has a TypeScript implementation of exactly the CEL rules in the CRD', () => {
    assert.deepEqual([...celRulesOf(dynamicStorageOpenApiSchema)].sort(), Object.keys(celRuleImplementations).sort());
  });

  it('gives a message function to exactly the rules with a messageExpression', () => {
    const withExpression = new Set<string>();
    const visit = (schema: JsonSchema): void => {
      for (const rule of schema['x-kubernetes-validations'] ?? []) if (rule.messageExpression) withExpression.add(rule.rule);
      for (const child of Object.values(schema.properties ?? {})) visit(child);
      if (schema.items) visit(schema.items);
    };
    visit(dynamicStorageOpenApiSchema);
    const withMessage = Object.entries(celRuleImplementations).filter(([, impl]) => impl.message).map(([rule]) => rule);
    assert.deepEqual(withMessage.sort(), [...withExpression].sort());
  });
});
