/**
 * Renders CloudNativePG's own release manifest (releases/cnpg-X.Y.Z.yaml of its Go module) for the real test stack:
 *   node hack/cnpg/render.ts RELEASE_MANIFEST OPERATOR_IMAGE POSTGRESQL_IMAGE > rendered.yaml
 * Changes, and only these: the operator image (and OPERATOR_IMAGE_NAME, which instance pods copy the manager from) is the
 * locally built one and never pulled (there is no registry); the operator's CPU and memory limits go (100m of CPU makes its
 * start-up outlast its own startup probe on a loaded 2-core machine); and the operator's configuration ConfigMap sets the
 * default PostgreSQL image to the local one, so a Cluster without `imageName` runs it.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments, stringify } from 'yaml';

interface Container {
  name?: string;
  image?: string;
  imagePullPolicy?: string;
  env?: { name: string; value?: string }[];
  resources?: { limits?: unknown; requests?: unknown };
}

interface Manifest {
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  spec?: { template?: { spec?: { containers?: Container[] } } };
}

export const operatorDeployment = 'cnpg-controller-manager';
export const operatorConfigMap = 'cnpg-controller-manager-config';

export function render(release: string, operatorImage: string, postgresqlImage: string): string {
  const docs = parseAllDocuments(release).map((d) => d.toJS() as Manifest | null).filter((d): d is Manifest => d !== null);
  const deployment = docs.find((d) => d.kind === 'Deployment' && d.metadata?.name === operatorDeployment);
  const manager = deployment?.spec?.template?.spec?.containers?.find((c) => c.name === 'manager');
  if (!deployment || !manager) throw new Error(`no Deployment ${operatorDeployment} with a manager container in the release manifest`);
  manager.image = operatorImage;
  manager.imagePullPolicy = 'IfNotPresent';
  const imageEnv = manager.env?.find((e) => e.name === 'OPERATOR_IMAGE_NAME');
  if (!imageEnv) throw new Error('the operator container has no OPERATOR_IMAGE_NAME');
  imageEnv.value = operatorImage;
  if (manager.resources) delete manager.resources.limits;
  const namespace = deployment.metadata?.namespace ?? 'cnpg-system';
  docs.push({
    apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: operatorConfigMap, namespace },
    data: { POSTGRES_IMAGE_NAME: postgresqlImage },
  } as Manifest);
  return docs.map((d) => stringify(d)).join('---\n');
}

function main(argv: string[]): void {
  const [file, operatorImage, postgresqlImage] = argv;
  if (!file || !operatorImage || !postgresqlImage) {
    process.stderr.write('usage: node hack/cnpg/render.ts RELEASE_MANIFEST OPERATOR_IMAGE POSTGRESQL_IMAGE\n');
    process.exit(2);
  }
  process.stdout.write(render(readFileSync(file, 'utf8'), operatorImage, postgresqlImage));
}

if (import.meta.main) main(process.argv.slice(2));
