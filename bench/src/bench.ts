import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { renderCurveChart } from './chart.ts';
import { type Results, renderMarkdown } from './markdown.ts';
import { fleetScale, loginCost, throughput } from './sections.ts';
import { fleetRun } from './storm-cost.ts';

const HELP = `pnpm bench: how fast, how big, and what a storm costs

Usage: pnpm bench [--quick] [--out DIR]

Runs, on real processes over loopback:
  1. xqueue throughput (get_queuelen; get_submission + put_result cycles) vs bare Hono
  2. login cost at 1,000,000 and 10,000 PBKDF2 iterations; LMS CPU per hour, storm vs cure
  3. fleet scale: 1, 10, 100, 1000 connections of one exempt account
  4. storm cost curve: 1..64 connections, with and without the exemption
Writes DIR/latest.json and DIR/latest.md (default bench/results) and prints the table.
--quick shortens every measurement (for a smoke run; numbers are noisier).`;

const log = (message: string) => process.stderr.write(`bench: ${message}\n`);

async function main() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const quick = values.quick ?? false;
  const seconds = quick ? 2 : 5;
  const outDir = values.out ?? join(import.meta.dirname, '..', 'results');
  const started = Date.now();

  log('1/4 throughput: bare Hono, get_queuelen, get_submission + put_result');
  const throughputFigures = await throughput(seconds, 50);

  log('2/4 login cost at 1,000,000 and 10,000 iterations');
  const logins = [
    await loginCost(1_000_000, quick ? 4 : 12, 4),
    await loginCost(10_000, quick ? 100 : 400, 8),
  ];
  log('2/4 LMS CPU per hour at production settings: storm vs cure (8 connections)');
  const stormSeconds = quick ? 6 : 15;
  const cpuPerHour = [
    await fleetRun({
      connections: 8,
      exempt: false,
      seconds: stormSeconds,
      compression: 1,
      prefill: 200,
    }),
    await fleetRun({
      connections: 8,
      exempt: true,
      seconds: stormSeconds,
      compression: 1,
      prefill: 200,
    }),
  ];

  log('3/4 fleet scale: 1, 10, 100, 1000 connections');
  const fleet = await fleetScale([1, 10, 100, 1000], seconds);

  log('4/4 storm cost curve');
  const curve = [];
  for (const connections of quick ? [1, 4, 16] : [1, 2, 4, 8, 16, 32, 64]) {
    for (const exempt of [false, true]) {
      curve.push(
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

  const results: Results = {
    generatedAt: new Date().toISOString(),
    quick,
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryGb: Math.round(totalmem() / 2 ** 30),
      node: process.versions.node,
    },
    wallSeconds: Math.round((Date.now() - started) / 1000),
    throughput: throughputFigures,
    loginCost: logins,
    stormCpu: cpuPerHour,
    fleetScale: fleet,
    stormCurve: curve,
    targets: {
      getQueuelenRatio: { target: 0.5, actual: throughputFigures.getQueuelen.ratioToHello },
      cycleRatio: { target: 0.15, actual: throughputFigures.cycles.ratioToHello },
      errorsAt1000: {
        target: 0,
        actual: fleet.find((f) => f.connections === 1000)?.errors ?? null,
      },
      memoryAt1000Mb: {
        target: 250,
        actual: fleet.find((f) => f.connections === 1000)?.lmsResidentMb ?? null,
      },
    },
  };
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  const markdown = renderMarkdown(results);
  await writeFile(join(outDir, 'latest.md'), markdown);
  await writeFile(join(outDir, 'storm-curve.svg'), renderCurveChart(curve));
  process.stdout.write(`${markdown}\nWrote ${outDir}/latest.json, latest.md, storm-curve.svg\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
