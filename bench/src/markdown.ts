import type { LoadFigures } from './load.ts';
import type { FleetFigures, LoginCostFigures, ThroughputFigures } from './sections.ts';
import type { FleetRun } from './storm-cost.ts';

/** Everything `pnpm bench` measured, as written to latest.json. */
export interface Results {
  generatedAt: string;
  quick: boolean;
  machine: { cpus: number; cpuModel: string; memoryGb: number; node: string };
  wallSeconds: number;
  throughput: ThroughputFigures;
  loginCost: LoginCostFigures[];
  stormCpu: FleetRun[];
  fleetScale: FleetFigures[];
  stormCurve: FleetRun[];
  targets: Record<string, { target: number; actual: number | null }>;
}

const row = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
const load = (name: string, figures: LoadFigures, ratio?: number) =>
  row([
    name,
    figures.requestsPerSecond,
    ratio === undefined ? '1.00' : ratio.toFixed(2),
    figures.latencyP50Ms,
    figures.latencyP99Ms,
    figures.errors,
  ]);

/** The Markdown tables of latest.md (and the README's Performance section). */
export function renderMarkdown(results: Results): string {
  const { throughput } = results;
  const lines = [
    `Measured ${results.generatedAt} on ${results.machine.cpus} cores (${results.machine.cpuModel}), ${results.machine.memoryGb} GiB, Node ${results.machine.node}; \`pnpm bench\` took ${results.wallSeconds} s${results.quick ? ' (--quick)' : ''}.`,
    '',
    '**1. xqueue throughput** (50 concurrent connections over loopback; load generator in the same machine)',
    '',
    row(['what', 'req/s', 'ratio to bare Hono', 'p50 ms', 'p99 ms', 'errors']),
    row(['---', '---:', '---:', '---:', '---:', '---:']),
    load('bare Hono hello world (autocannon)', throughput.helloWorld),
    load(
      'authenticated get_queuelen (autocannon)',
      throughput.getQueuelen,
      throughput.getQueuelen.ratioToHello,
    ),
    load(
      'get_submission + put_result cycles (cycles/s)',
      throughput.cycles,
      throughput.cycles.ratioToHello,
    ),
    '',
    '**2. Login cost** (sequential batches of parallel xqueue logins; CPU read from the LMS process)',
    '',
    row(['PBKDF2 iterations', 'logins', 'logins/s', 'LMS CPU ms per login']),
    row(['---:', '---:', '---:', '---:']),
    ...results.loginCost.map((f) =>
      row([f.iterations.toLocaleString('en'), f.logins, f.loginsPerSecond, f.cpuMsPerLogin]),
    ),
    '',
    row(['8 connections, production settings', 'logins/h', 'graded/min', 'LMS CPU s per hour']),
    row(['---', '---:', '---:', '---:']),
    ...results.stormCpu.map((f) =>
      row([
        f.exempt ? 'cure (exempt)' : 'storm (not exempt)',
        f.loginsPerHour,
        f.gradedPerMinute,
        f.lmsCpuSecondsPerHour,
      ]),
    ),
    '',
    '**3. Fleet scale** (one exempt account; each connection its own socket and session, polling get_submission)',
    '',
    row(['connections', 'req/s', 'requests', 'errors', 'LMS RSS MB (peak)']),
    row(['---:', '---:', '---:', '---:', '---:']),
    ...results.fleetScale.map((f) =>
      row([f.connections, f.requestsPerSecond, f.requests, f.errors, f.lmsResidentMb]),
    ),
    '',
    `**4. Storm cost curve** (time compressed ${results.stormCurve[0]?.compression ?? 20}x, rates scaled to production; chart: storm-curve.svg)`,
    '',
    row(['connections', 'logins/h storm', 'logins/h cure', 'graded/min storm', 'graded/min cure']),
    row(['---:', '---:', '---:', '---:', '---:']),
  ];
  const byConnections = new Map<number, { storm?: FleetRun; cure?: FleetRun }>();
  for (const run of results.stormCurve) {
    const entry = byConnections.get(run.connections) ?? {};
    entry[run.exempt ? 'cure' : 'storm'] = run;
    byConnections.set(run.connections, entry);
  }
  for (const [connections, { storm, cure }] of byConnections) {
    lines.push(
      row([
        connections,
        storm?.loginsPerHour ?? '-',
        cure?.loginsPerHour ?? '-',
        storm?.gradedPerMinute ?? '-',
        cure?.gradedPerMinute ?? '-',
      ]),
    );
  }
  lines.push(
    '',
    '**Targets**',
    '',
    row(['target', 'wanted', 'measured', 'met']),
    row(['---', '---:', '---:', '---']),
  );
  const names: Record<string, [string, (a: number, t: number) => boolean]> = {
    getQueuelenRatio: ['get_queuelen / bare Hono', (a, t) => a >= t],
    cycleRatio: ['cycles / bare Hono', (a, t) => a >= t],
    errorsAt1000: ['errors at 1,000 connections', (a, t) => a <= t],
    memoryAt1000Mb: ['LMS MB at 1,000 connections', (a, t) => a < t],
  };
  for (const [key, { target, actual }] of Object.entries(results.targets)) {
    const [label, met] = names[key] ?? [key, () => false];
    lines.push(
      row([label, target, actual ?? '-', actual !== null && met(actual, target) ? 'yes' : 'NO']),
    );
  }
  return `${lines.join('\n')}\n`;
}
