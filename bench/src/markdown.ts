import type { LoadFigures } from './load.ts';
import type { FleetFigures, LoginCostFigures, ThroughputFigures } from './sections.ts';
import type { FleetRun } from './storm-cost.ts';

/** Everything `pnpm bench` measured, as written to latest.json. */
export interface Results {
  generatedAt: string;
  quick: boolean;
  machine: { cpus: number; cpuModel: string; memoryGb: number; node: string };
  wallSeconds: number;
  throughput?: ThroughputFigures;
  loginCost?: LoginCostFigures[];
  stormCpu?: FleetRun[];
  fleetScale?: FleetFigures[];
  stormCurve?: FleetRun[];
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

function throughputSection(throughput: ThroughputFigures): string[] {
  return [
    '**1. xqueue throughput** (50 concurrent connections over loopback; the load generator shares the 2 cores)',
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
  ];
}

function loginSection(loginCost: LoginCostFigures[], stormCpu: FleetRun[]): string[] {
  return [
    '**2. Login cost** (batches of parallel xqueue logins; CPU read from the LMS process in /proc)',
    '',
    row(['PBKDF2 iterations', 'logins', 'logins/s', 'LMS CPU ms per login']),
    row(['---:', '---:', '---:', '---:']),
    ...loginCost.map((f) =>
      row([f.iterations.toLocaleString('en'), f.logins, f.loginsPerSecond, f.cpuMsPerLogin]),
    ),
    '',
    row([
      '8 connections, production settings (1,000,000 iterations, 1 s polls)',
      'logins/h',
      'graded/min',
      'LMS CPU s per hour',
    ]),
    row(['---', '---:', '---:', '---:']),
    ...stormCpu.map((f) =>
      row([
        f.exempt ? 'cure (exempt)' : 'storm (not exempt)',
        f.loginsPerHour,
        f.gradedPerMinute,
        f.lmsCpuSecondsPerHour,
      ]),
    ),
    '',
  ];
}

function fleetSection(fleetScale: FleetFigures[]): string[] {
  return [
    '**3. Fleet scale** (one exempt account; each connection its own socket and session, polling get_submission)',
    '',
    row(['connections', 'req/s', 'requests', 'errors', 'LMS RSS MB (peak)']),
    row(['---:', '---:', '---:', '---:', '---:']),
    ...fleetScale.map((f) =>
      row([f.connections, f.requestsPerSecond, f.requests, f.errors, f.lmsResidentMb]),
    ),
    '',
  ];
}

function curveSection(stormCurve: FleetRun[]): string[] {
  const lines = [
    `**4. Storm cost curve** (one replica, one queue, K connections against a prefilled queue; time compressed ${stormCurve[0]?.compression ?? 20}x, rates scaled to production; chart: storm-curve.svg)`,
    '',
    row(['connections', 'logins/h storm', 'logins/h cure', 'graded/min storm', 'graded/min cure']),
    row(['---:', '---:', '---:', '---:', '---:']),
  ];
  const byConnections = new Map<number, { storm?: FleetRun; cure?: FleetRun }>();
  for (const run of stormCurve) {
    const entry = byConnections.get(run.connections) ?? {};
    entry[run.exempt ? 'cure' : 'storm'] = run;
    byConnections.set(run.connections, entry);
  }
  // A run that emptied its queue graded all there was: its rate is a floor, marked ">=".
  const graded = (run?: FleetRun) =>
    run ? `${run.queueRanDry ? '>=' : ''}${run.gradedPerMinute}` : '-';
  for (const [connections, { storm, cure }] of byConnections) {
    lines.push(
      row([
        connections,
        storm?.loginsPerHour ?? '-',
        cure?.loginsPerHour ?? '-',
        graded(storm),
        graded(cure),
      ]),
    );
  }
  const dry = stormCurve.some((run) => run.queueRanDry);
  return [
    ...lines,
    ...(dry
      ? ['', '">=": the prefilled queue ran dry, so the graders could do more than this.']
      : []),
    '',
  ];
}

const TARGETS: Record<string, [string, (actual: number, target: number) => boolean]> = {
  getQueuelenRatio: ['get_queuelen / bare Hono', (a, t) => a >= t],
  cycleRatio: ['cycles / bare Hono', (a, t) => a >= t],
  errorsAt1000: ['errors at 1,000 connections', (a, t) => a <= t],
  memoryAt1000Mb: ['LMS MB at 1,000 connections', (a, t) => a < t],
};

/** The Markdown tables of latest.md (and the README's Performance section). */
export function renderMarkdown(results: Results): string {
  const lines = [
    `Measured ${results.generatedAt} on ${results.machine.cpus} cores (${results.machine.cpuModel}), ${results.machine.memoryGb} GiB, Node ${results.machine.node}; \`pnpm bench\` took ${results.wallSeconds} s${results.quick ? ' (--quick)' : ''}.`,
    '',
    ...(results.throughput ? throughputSection(results.throughput) : []),
    ...(results.loginCost && results.stormCpu
      ? loginSection(results.loginCost, results.stormCpu)
      : []),
    ...(results.fleetScale ? fleetSection(results.fleetScale) : []),
    ...(results.stormCurve ? curveSection(results.stormCurve) : []),
    '**Targets**',
    '',
    row(['target', 'wanted', 'measured', 'met']),
    row(['---', '---:', '---:', '---']),
  ];
  for (const [key, { target, actual }] of Object.entries(results.targets)) {
    const [label, met] = TARGETS[key] ?? [key, () => false];
    lines.push(
      row([label, target, actual ?? '-', actual !== null && met(actual, target) ? 'yes' : 'NO']),
    );
  }
  return `${lines.join('\n')}\n`;
}
