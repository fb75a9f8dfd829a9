import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { recordLabRuns, writeLabRuns } from './lab-record.ts';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/**
 * A stand-in for `pnpm -s storm`: writes a report.json with one scenario into its `--out`, its
 * logins the run's number (counted in a file), and exits with `code` on the run `failOn`.
 */
function standIn(counter: string, failOn = 0) {
  const script = `
    const fs = require('node:fs');
    const out = process.argv[process.argv.indexOf('--out') + 1];
    const run = (fs.existsSync(${JSON.stringify(counter)}) ? Number(fs.readFileSync(${JSON.stringify(counter)}, 'utf8')) : 0) + 1;
    fs.writeFileSync(${JSON.stringify(counter)}, String(run));
    if (run === ${failOn}) { console.error('the stack did not start'); process.exit(1); }
    const scenario = { name: 'storm', description: 'x', logins: run, forbidden: 2 * run,
      forbiddenPerLogin: 2, graded: 24, submitted: 24, gradedPerMinute: 104.26,
      loginTimeouts: 0, connectionDeaths: 0, replicaRestarts: 0, verdict: 'STORM',
      durationSeconds: 9.347, series: [] };
    fs.writeFileSync(out + '/report.json', JSON.stringify({ scenarios: [scenario] }));`;
  return [process.execPath, '-e', script, '--'];
}

/** Costs that differ from run to run, as this machine's do: 200, 300, 100 ns... */
function costsInTurn() {
  const iterations = [200, 300, 100];
  let call = 0;
  return async () => ({ iterationNs: iterations[call++ % 3] as number, requestMs: 0.2 });
}

describe('pnpm sim --record-lab', () => {
  it('keeps each run’s figures from its report.json, in order, and the costs before each', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lab-record-test-'));
    dirs.push(dir);
    const recorded = await recordLabRuns({
      runs: 3,
      command: standIn(join(dir, 'count')),
      costs: costsInTurn(),
    });
    expect(recorded.runs.map((run) => run.run)).toEqual([1, 2, 3]);
    expect(recorded.runs.map((run) => run.scenarios[0]?.logins)).toEqual([1, 2, 3]);
    expect(recorded.runs[0]?.durationsSeconds).toEqual([9.3]);
    expect(recorded.runs[0]?.scenarios[0]).toEqual({
      name: 'storm',
      logins: 1,
      forbidden: 2,
      forbiddenPerLogin: 2,
      graded: 24,
      submitted: 24,
      gradedPerMinute: 104.26,
      loginTimeouts: 0,
      connectionDeaths: 0,
      replicaRestarts: 0,
      verdict: 'STORM',
    });
    // Each run's own, and their median.
    expect(recorded.runs.map((run) => run.costs.iterationNs)).toEqual([200, 300, 100]);
    expect(recorded.costs).toEqual({ iterationNs: 200, requestMs: 0.2 });
    const file = join(dir, 'runs.json');
    await writeLabRuns(file, recorded);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(recorded);
  });

  it('fails with the run’s own words when a run fails', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lab-record-test-'));
    dirs.push(dir);
    await expect(
      recordLabRuns({ runs: 3, command: standIn(join(dir, 'count'), 2), costs: costsInTurn() }),
    ).rejects.toThrow(/ended with 1: the stack did not start/);
  });
});
