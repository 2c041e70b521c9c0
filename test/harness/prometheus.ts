/**
 * A real Prometheus (Debian's package; hack/ensure-prometheus.sh installs it) serving a history backfilled with promtool
 * from OpenMetrics text, on a free loopback port, for the tests of `kubectl cnpg storage simulate --prometheus`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { eventually } from './eventually.ts';
import { freePort } from './ports.ts';
import { startProcess } from './processes.ts';

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface HistoryPrometheus {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Stops Prometheus and removes its data. */
  stop(): Promise<void>;
}

/** Starts Prometheus on the samples of `openMetrics` (OpenMetrics text with timestamps; `# EOF` is added). */
export async function startHistoryPrometheus(openMetrics: string): Promise<HistoryPrometheus> {
  await execFileAsync(path.join(repoRoot, 'hack/ensure-prometheus.sh'), [], { cwd: repoRoot, timeout: 600_000 });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cnpg-ds-prometheus-'));
  try {
    await writeFile(path.join(dir, 'history.om'), `${openMetrics.trimEnd()}\n# EOF\n`);
    await writeFile(path.join(dir, 'prometheus.yml'), 'global:\n  scrape_interval: 1h\n');
    await mkdir(path.join(dir, 'data'));
    await execFileAsync('promtool', ['tsdb', 'create-blocks-from', 'openmetrics', path.join(dir, 'history.om'), path.join(dir, 'data')],
      { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const prometheus = startProcess('prometheus', 'prometheus', [
    `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, '--storage.tsdb.retention.time=36500d',
    `--web.listen-address=127.0.0.1:${port}`,
  ], path.join(dir, 'prometheus.log'));
  const stop = async (): Promise<void> => {
    await prometheus.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await eventually(async () => {
      if (prometheus.exited()) throw new Error(`prometheus exited:\n${await prometheus.tail()}`);
      const response = await fetch(`${url}/-/ready`);
      assert.equal(response.status, 200);
    }, { timeoutMs: 60_000, intervalMs: 250 });
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, stop };
}
