import type { LoadFigures } from './load.ts';
import type { FleetFigures, LoginCostFigures, ThroughputFigures } from './sections.ts';
import type { SimSpeedFigures } from './sim-speed.ts';
import type { FleetRun } from './storm-cost.ts';
import type { TopologyFigures } from './topology.ts';

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
  topology?: TopologyFigures;
  sim?: SimSpeedFigures[];
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
    load(`bare Hono hello world (${throughput.helloWorld.generator})`, throughput.helloWorld),
    load(
      `authenticated get_queuelen (${throughput.getQueuelen.generator})`,
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

function curveSection(stormCurve: FleetRun[], chart: string): string[] {
  const lines = [
    `**4. Storm cost curve** (one replica, one queue, K connections against a prefilled queue; time compressed ${stormCurve[0]?.compression ?? 20}x, rates scaled to production; chart: ${chart})`,
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

const STORE_LABELS = {
  sqlite: 'LMS store, SQLite (one transaction, fsync per commit)',
  redis:
    'LMS store, Redis (atomic step in Redis, then slot and last_login in SQLite, one commit per event-loop turn)',
  'redis-registry':
    'session-policy Redis registry alone, one script decides and commits (as the LMS)',
  'redis-registry-optimistic':
    'session-policy Redis registry alone, read, decide in JavaScript, commit if unchanged',
} as const;

function topologySection(figures: TopologyFigures): string[] {
  const where = (f: { workers: number; sessionStore: string }) =>
    `${f.workers} worker${f.workers === 1 ? '' : 's'}, sessions in ${f.sessionStore === 'redis' ? 'Redis' : 'SQLite'}`;
  return [
    '**5. Topology** (`LMS_WORKERS`, `SESSION_STORE`; a private Redis on loopback; the load generator shares the 2 cores)',
    '',
    row([
      `authenticated get_queuelen (${figures.getQueuelen[0]?.generator}, 50 connections)`,
      'req/s',
      'p50 ms',
      'p99 ms',
      'errors',
    ]),
    row(['---', '---:', '---:', '---:', '---:']),
    ...figures.getQueuelen.map((f) =>
      row([where(f), f.requestsPerSecond, f.latencyP50Ms, f.latencyP99Ms, f.errors]),
    ),
    '',
    `2 workers over 1 (both on Redis sessions): ${figures.workersRatio.toFixed(2)}x.`,
    '',
    row([
      `admission (lms_session_admission_seconds; rounds of ${figures.admission[0]?.parallel ?? 32} parallel logins)`,
      'accounts',
      'admissions',
      'p50 ms',
      'p99 ms',
      'within 2 ms',
      'logins/s',
    ]),
    row(['---', '---', '---:', '---:', '---:', '---:', '---:']),
    ...figures.admission.map((f) =>
      row([
        where(f),
        f.accounts === 'one' ? 'one (all wait for each other)' : `${f.parallel}, one login each`,
        f.admissions,
        f.p50Ms,
        f.p99Ms,
        `${(f.within2Ms * 100).toFixed(1)}%`,
        f.loginsPerSecond,
      ]),
    ),
    '',
    "p50 and p99 are read from the histogram as PromQL's `histogram_quantile` does (linear inside a bucket); \"within 2 ms\" is exact (a bucket bound); logins/s is the rounds' logins over their wall time, as the bench saw them. Each admission is timed from its start to its end inside the LMS, so it includes the other logins' work that the event loop runs meanwhile: with Redis while it waits for Redis, and with either store the admissions of logins whose throttle checks committed in the same batch, which then run one after another in one turn.",
    '',
    row([
      `the store alone (the LMS's store in the bench process, no HTTP; rounds of ${figures.storeAdmission[0]?.parallel ?? 32} admissions at once, exact percentiles)`,
      'accounts',
      'admissions',
      'p50 ms',
      'p99 ms',
      'max ms',
    ]),
    row(['---', '---', '---:', '---:', '---:', '---:']),
    ...figures.storeAdmission.map((f) =>
      row([
        STORE_LABELS[f.target],
        f.accounts === 'one' ? 'one (each waits for the ones before)' : `${f.parallel}, one each`,
        f.admissions,
        f.p50Ms,
        f.p99Ms,
        f.maxMs,
      ]),
    ),
    '',
    row([
      '8 connections, production settings, 2 workers on Redis sessions',
      'logins/h',
      'graded/min',
      'LMS CPU s per hour (all workers)',
    ]),
    row(['---', '---:', '---:', '---:']),
    ...figures.storm.map((f) =>
      row([
        f.exempt ? 'cure (exempt)' : 'storm (not exempt)',
        f.loginsPerHour,
        `${f.queueRanDry ? '>=' : ''}${f.gradedPerMinute}`,
        f.lmsCpuSecondsPerHour,
      ]),
    ),
    ...(figures.storm.some((f) => f.queueRanDry)
      ? ['', '">=": the prefilled queue ran dry, so the graders could do more than this.']
      : []),
    '',
  ];
}

function simSection(figures: SimSpeedFigures[], quick: boolean): string[] {
  return [
    `**6. Simulator speed** (\`pnpm sim --preset mit\`, and its storm again at xqueue-watcher's code defaults, 1 s polls and timeout: ${quick ? 'its first 10 minutes, the surge moved into them (--quick)' : 'an hour of load, then the drain until all is graded or 30 minutes'}; one process on a virtual clock, no report written)`,
    '',
    row([
      'scenario',
      'simulated s',
      'wall s',
      'CPU s',
      'simulated s per wall s',
      'logins',
      'graded / submitted',
      'verdict',
    ]),
    row(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---']),
    ...figures.map((f) =>
      row([
        f.scenario,
        f.simulatedSeconds,
        f.wallSeconds,
        f.cpuSeconds,
        f.speedup,
        f.logins,
        `${f.graded}/${f.submitted}`,
        f.verdict,
      ]),
    ),
    '',
  ];
}

const TARGETS: Record<string, [string, (actual: number, target: number) => boolean]> = {
  getQueuelenRatio: ['get_queuelen / bare Hono', (a, t) => a >= t],
  cycleRatio: ['cycles / bare Hono', (a, t) => a >= t],
  errorsAt1000: ['errors at 1,000 connections', (a, t) => a <= t],
  memoryAt1000Mb: ['LMS MB at 1,000 connections', (a, t) => a < t],
  workersRatio: ['get_queuelen, 2 workers / 1 (Redis sessions)', (a, t) => a >= t],
  admissionRedisP99Ms: [
    'admission p99 ms on Redis, 32 accounts logging in at once',
    (a, t) => a < t,
  ],
  storeAdmissionRedisP99Ms: [
    'admission p99 ms in the Redis registry alone, 32 accounts at once',
    (a, t) => a < t,
  ],
  admissionRedisOneAccountP99Ms: [
    'admission p99 ms on Redis, one account logging in 32 times at once',
    (a, t) => a < t,
  ],
  simStormSpeedup: [
    "simulated s per wall s, MIT's storm (pnpm sim --preset mit)",
    (a, t) => a >= t,
  ],
  simStormAtDefaultsSpeedup: [
    "simulated s per wall s, MIT's storm at 1 s polls and timeout (--requests-timeout 1 --poll-interval 1)",
    (a, t) => a >= t,
  ],
};

/**
 * The Markdown tables of latest.md (and the README's Performance section); `chart`: the storm
 * curve's chart file beside it.
 */
export function renderMarkdown(results: Results, chart = 'storm-curve.svg'): string {
  const lines = [
    `Measured ${results.generatedAt} on ${results.machine.cpus} cores (${results.machine.cpuModel}), ${results.machine.memoryGb} GiB, Node ${results.machine.node}; \`pnpm bench\` took ${results.wallSeconds} s${results.quick ? ' (--quick)' : ''}.`,
    '',
    ...(results.throughput ? throughputSection(results.throughput) : []),
    ...(results.loginCost && results.stormCpu
      ? loginSection(results.loginCost, results.stormCpu)
      : []),
    ...(results.fleetScale ? fleetSection(results.fleetScale) : []),
    ...(results.stormCurve ? curveSection(results.stormCurve, chart) : []),
    ...(results.topology ? topologySection(results.topology) : []),
    ...(results.sim ? simSection(results.sim, results.quick) : []),
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
