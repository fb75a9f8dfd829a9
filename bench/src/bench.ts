import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { renderSvg } from '@storm-lab/charts';
import {
  type CliIo,
  parseFlags,
  processIo,
  runAsProgram,
  runCli,
  UsageError,
} from '@storm-lab/cli-kit';
import { curveChart } from './curve-chart.ts';
import { type Results, renderMarkdown } from './markdown.ts';
import { fleetScale, loginCost, throughput } from './sections.ts';
import { STORM_AT_CODE_DEFAULTS, simSpeed } from './sim-speed.ts';
import { fleetRun } from './storm-cost.ts';
import { topology } from './topology.ts';

const HELP = `pnpm bench: how fast, how big, and what a storm costs

Usage: pnpm bench [--quick] [--only SECTIONS] [--out DIR]

Runs, on real processes over loopback:
  1. xqueue throughput (get_queuelen; get_submission + put_result cycles) vs bare Hono
  2. login cost at 1,000,000 and 10,000 PBKDF2 iterations; LMS CPU per hour, storm vs cure
  3. fleet scale: 1, 10, 100, 1000 connections of one exempt account
  4. storm cost curve: 1..64 connections, with and without the exemption
  5. topology: get_queuelen with 1 and 2 LMS workers, admission latency on SQLite and on
     Redis with 32 parallel logins, the storm with 2 workers on Redis sessions
and, in this process:
  6. sim: the simulator's speed on MIT's incident (pnpm sim --preset mit), storm and cure,
     and the storm at 1 s polls and timeout: wall time, CPU time, simulated seconds per wall
     second
Writes DIR/latest.json and DIR/latest.md (default bench/results) and prints the table.
--quick shortens every measurement (for a smoke run; numbers are noisier).
--only throughput,login,fleet,curve,topology,sim runs some sections (to profile one thing); the files are
then written to DIR/partial.json and partial.md so latest.* always hold a full run.
Fixed loads go through wrk when it is installed (apt-get install wrk), else autocannon;
BENCH_LOAD_GENERATOR=wrk|autocannon chooses (wrk when missing is an error).`;

const log = (message: string) => process.stderr.write(`bench: ${message}\n`);

const SECTIONS = ['throughput', 'login', 'fleet', 'curve', 'topology', 'sim'] as const;
type Section = (typeof SECTIONS)[number];

/** What one `pnpm bench` run measures and where it writes. */
export interface BenchOptions {
  quick: boolean;
  /** The sections to run, all of them by default. */
  only: Section[];
  /** Where the files go; default bench/results. */
  outDir: string;
}

/**
 * Parses `pnpm bench ARGS`: the options, or 'help'; a `UsageError` for an unknown flag or section.
 *
 * @example
 * parseBenchArgs(['--quick', '--only', 'sim']); // { quick: true, only: ['sim'], outDir: … }
 */
export function parseBenchArgs(argv: readonly string[]): BenchOptions | 'help' {
  const { values } = parseFlags(argv, {
    quick: { type: 'boolean' },
    only: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return 'help';
  const only = values.only?.split(',').map((name) => name.trim()) ?? [...SECTIONS];
  const unknown = only.filter((name) => !(SECTIONS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new UsageError(
      `--only: unknown section ${unknown.join(', ')} (choose from ${SECTIONS.join(', ')})`,
    );
  }
  return {
    quick: values.quick ?? false,
    only: only as Section[],
    outDir: values.out ?? join(import.meta.dirname, '..', 'results'),
  };
}

async function bench(argv: readonly string[], io: CliIo): Promise<number> {
  const options = parseBenchArgs(argv);
  if (options === 'help') {
    io.out.write(`${HELP}\n`);
    return 0;
  }
  const { quick, only, outDir } = options;
  const run = (name: Section) => only.includes(name);
  const name = only.length === SECTIONS.length ? 'latest' : 'partial';
  const seconds = quick ? 2 : 5;
  const started = Date.now();

  const results: Results = {
    generatedAt: new Date().toISOString(),
    quick,
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryGb: Math.round(totalmem() / 2 ** 30),
      node: process.versions.node,
    },
    wallSeconds: 0,
    targets: {},
  };
  if (run('throughput')) {
    log('throughput: bare Hono, get_queuelen, get_submission + put_result');
    const figures = await throughput(seconds, 50);
    results.throughput = figures;
    results.targets.getQueuelenRatio = { target: 0.5, actual: figures.getQueuelen.ratioToHello };
    results.targets.cycleRatio = { target: 0.15, actual: figures.cycles.ratioToHello };
  }
  if (run('login')) {
    log('login cost at 1,000,000 and 10,000 iterations');
    results.loginCost = [
      await loginCost(1_000_000, quick ? 4 : 12, 4),
      await loginCost(10_000, quick ? 100 : 400, 8),
    ];
    log('LMS CPU per hour at production settings: storm vs cure (8 connections)');
    const stormSeconds = quick ? 6 : 15;
    results.stormCpu = [];
    for (const exempt of [false, true]) {
      results.stormCpu.push(
        await fleetRun({
          connections: 8,
          exempt,
          seconds: stormSeconds,
          compression: 1,
          prefill: 200,
        }),
      );
    }
  }
  if (run('fleet')) {
    log('fleet scale: 1, 10, 100, 1000 connections');
    results.fleetScale = await fleetScale([1, 10, 100, 1000], seconds);
    const at1000 = results.fleetScale.find((figures) => figures.connections === 1000);
    results.targets.errorsAt1000 = { target: 0, actual: at1000?.errors ?? null };
    results.targets.memoryAt1000Mb = { target: 250, actual: at1000?.lmsResidentMb ?? null };
  }
  if (run('curve')) {
    log('storm cost curve');
    results.stormCurve = [];
    for (const connections of quick ? [1, 4, 16] : [1, 2, 4, 8, 16, 32, 64]) {
      for (const exempt of [false, true]) {
        results.stormCurve.push(
          await fleetRun({
            connections,
            exempt,
            seconds: quick ? 3 : 5,
            compression: 20,
            prefill: 3000,
          }),
        );
        log(`  ${connections} connections, ${exempt ? 'exempt' : 'not exempt'}: done`);
      }
    }
  }
  if (run('topology')) {
    log('topology: LMS workers and Redis sessions');
    const figures = await topology({
      seconds,
      rounds: quick ? 10 : 50,
      stormSeconds: quick ? 6 : 15,
    });
    results.topology = figures;
    results.targets.workersRatio = { target: 1.4, actual: figures.workersRatio };
    const onRedis = (accounts: 'one' | 'many') =>
      figures.admission.find(
        (f) => f.sessionStore === 'redis' && f.workers === 1 && f.accounts === accounts,
      )?.p99Ms ?? null;
    results.targets.admissionRedisP99Ms = { target: 2, actual: onRedis('many') };
    results.targets.admissionRedisOneAccountP99Ms = { target: 2, actual: onRedis('one') };
    const store = figures.storeAdmission.find(
      (f) => f.target === 'redis-registry' && f.accounts === 'many',
    );
    results.targets.storeAdmissionRedisP99Ms = { target: 2, actual: store?.p99Ms ?? null };
  }
  if (run('sim')) {
    log("sim: MIT's incident on the virtual clock: storm, cure, storm at 1 s polls");
    results.sim = await simSpeed(quick);
    const speedOf = (name: string) =>
      results.sim?.find((figures) => figures.scenario === name)?.speedup ?? null;
    results.targets.simStormSpeedup = { target: 120, actual: speedOf('storm') };
    results.targets.simStormAtDefaultsSpeedup = {
      target: 120,
      actual: speedOf(STORM_AT_CODE_DEFAULTS),
    };
  }
  results.wallSeconds = Math.round((Date.now() - started) / 1000);
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
  // A partial run's chart beside its partial.md: latest.md's stays with the full run.
  const chart = name === 'latest' ? 'storm-curve.svg' : 'partial-storm-curve.svg';
  const markdown = renderMarkdown(results, chart);
  await writeFile(join(outDir, `${name}.md`), markdown);
  if (results.stormCurve)
    await writeFile(join(outDir, chart), await renderSvg(curveChart(results.stormCurve)));
  io.out.write(`${markdown}\nWrote ${outDir}/${name}.json and ${name}.md\n`);
  return 0;
}

/**
 * Runs `pnpm bench ARGS` and returns its exit status: 0, or 2 for a mistake in the command line
 * (printed). Never exits the process.
 *
 * @example
 * const status = await main(['--quick', '--only', 'sim']);
 */
export function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  return runCli(() => bench(argv, io), { help: 'pnpm bench --help', io });
}

await runAsProgram(import.meta.url, (argv) => main(argv), { name: 'bench' });
