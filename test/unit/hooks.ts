/**
 * Root hooks of the unit tests (test/.mocharc.unit.json). A failing property test prints fast-check's `seed` and
 * `path`; `FC_SEED` (and `FC_PATH`) replay exactly that run and its shrinking:
 *
 *   FC_SEED=-1819918769 FC_PATH='12:3:0' npx mocha --config test/.mocharc.unit.json --grep 'does not grow again'
 *
 * Without them every run draws new seeds, as before.
 */
import fc from 'fast-check';

/** The replay settings from the environment, or undefined when no seed is given. */
export function replaySettings(env: Readonly<Record<string, string | undefined>>): { seed: number; path?: string } | undefined {
  const raw = env.FC_SEED?.trim();
  if (raw === undefined || raw === '') return undefined;
  const seed = Number(raw);
  if (!Number.isInteger(seed)) throw new Error(`FC_SEED must be an integer, as fast-check prints it: got ${JSON.stringify(raw)}`);
  const path = env.FC_PATH?.trim();
  return path ? { seed, path } : { seed };
}

export const mochaHooks = {
  beforeAll(): void {
    const replay = replaySettings(process.env);
    if (replay === undefined) return;
    fc.configureGlobal({ ...fc.readConfigureGlobal(), ...replay });
    console.log(`fast-check replays seed ${replay.seed}${replay.path ? ` at path ${replay.path}` : ''}`);
  },
};
