/**
 * The agent side of bench/agent-500.bench.ts, in a process of its own: the real agent (prober, change stream, metrics,
 * HTTP server) on the volumes listed in a file, with discovery and authorization stubbed out. The benchmark compiles it
 * to JavaScript first, as the image runs the agent (dist/agent/main.js), so Node's TypeScript loader is not measured.
 *
 * `node agent-child.js <targets.json> <interval ms> <process metrics: true|false>`; prints the agent's URL.
 */
import { readFileSync } from 'node:fs';
import { startAgent } from '../agent/agent.ts';
import { configDefaults } from '../agent/config.ts';
import type { VolumeTarget } from '../agent/prober.ts';
import { silentLogger } from '../test/harness/log.ts';

const [targetsFile = '', interval = '1000', processMetrics = 'false'] = process.argv.slice(2);
const targets = JSON.parse(readFileSync(targetsFile, 'utf8')) as VolumeTarget[];
const agent = await startAgent({
  ...configDefaults, nodeName: 'bench', kubeletRoot: '/', probeIntervalMs: Number(interval), listenHost: '127.0.0.1', listenPort: 0,
  tokenAudiences: [], processMetrics: processMetrics === 'true',
}, {
  logger: silentLogger,
  authorizer: { check: () => Promise.resolve({ status: 200, caller: { username: 'bench', groups: [] } }) },
  discovery: (onTargets) => ({
    start: () => { onTargets(targets); return Promise.resolve(); },
    stop: () => Promise.resolve(),
    status: () => ({ synced: true }),
  }),
});
process.stdout.write(`${agent.url}\n`);
process.on('SIGTERM', () => { void agent.stop().then(() => process.exit(0)); });
