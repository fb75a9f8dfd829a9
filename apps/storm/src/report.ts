import type { StormChart } from './charts.ts';
import { type ScenarioFigures, VERDICT_RULE } from './figures.ts';

/** The whole run as written to report.json. */
export interface StormReport {
  generatedAt: string;
  machine: { cpus: number; node: string; platform: string };
  compression: number;
  compressionNote: string;
  verdictRule: string;
  /** The fleet and load every scenario of the run shared. */
  run: RunShape;
  scenarios: Omit<ScenarioFigures, 'series' | 'samples'>[];
}

/** The settings of a run that shape every scenario of it. */
export interface RunShape {
  replicas: number;
  queues: number;
  connections: number;
  /** Seconds of student load (the drain comes after). */
  loadSeconds: number;
  submissions: number;
  students: number;
  drainSeconds: number;
  /** Production seconds one grading takes. */
  gradingSeconds: number;
}

/** A figure's row; `only` marks one that just the lab's runs or the simulator's have. */
type Row = [label: string, cell: (figures: ScenarioFigures) => string, only?: 'lab' | 'simulated'];

const fixed = (value: number | null, digits = 0) => (value === null ? '-' : value.toFixed(digits));

const ROWS: Row[] = [
  ['fleet (replicas x queues x connections)', (f) => `${f.replicas}x${f.queues}x${f.connections}`],
  ['logins', (f) => String(f.logins)],
  ['re-logins per hour (production)', (f) => String(f.loginsPerHour)],
  ['403s (get_submission + put_result)', (f) => String(f.forbidden)],
  ['403s per login', (f) => fixed(f.forbiddenPerLogin, 2)],
  ['login timeouts', (f) => String(f.loginTimeouts)],
  ['connection deaths', (f) => String(f.connectionDeaths)],
  ['replica restarts', (f) => String(f.replicaRestarts)],
  ['graded / submitted', (f) => `${f.graded}/${f.submitted}`],
  ['graded per minute (production)', (f) => String(f.gradedPerMinute)],
  ['waiting at end', (f) => String(f.waitingAtEnd)],
  ['wrong scores', (f) => String(f.wrongScores)],
  ['graded twice', (f) => (f.gradedTwice === undefined ? '-' : String(f.gradedTwice)), 'lab'],
  ['grading latency p50 ms', (f) => fixed(f.latencyP50Ms)],
  ['grading latency p95 ms', (f) => fixed(f.latencyP95Ms)],
  ['evictions', (f) => String(f.evictions)],
  ['storm alerts', (f) => String(f.stormAlerts)],
  [
    'person stays single-session',
    (f) => (f.personSingleSession === null ? 'n/a' : f.personSingleSession ? 'yes' : 'NO'),
  ],
  ['LMS worker utilisation', (f) => percent(f.lmsWorkerUtilisation), 'simulated'],
  ["students' request latency p50 ms", (f) => fixed(f.studentLatencyP50Ms ?? null), 'simulated'],
  ["students' request latency p95 ms", (f) => fixed(f.studentLatencyP95Ms ?? null), 'simulated'],
  ['verdict', (f) => f.verdict],
];

function percent(share: number | undefined): string {
  return share === undefined ? '-' : `${Math.round(share * 100)}%`;
}

/** The rows a set of scenarios fills: the lab's or the simulator's own only when some has them. */
function rowsFor(scenarios: readonly ScenarioFigures[]): Row[] {
  const has = {
    simulated: scenarios.some((figures) => figures.lmsWorkerUtilisation !== undefined),
    lab: scenarios.some((figures) => figures.gradedTwice !== undefined),
  };
  return ROWS.filter(([, , only]) => only === undefined || has[only]);
}

/** The verdict table's cells: a header of scenario names, then one row per figure. */
export function tableOf(scenarios: readonly ScenarioFigures[]) {
  const header = ['', ...scenarios.map((figures) => figures.name)];
  const body = rowsFor(scenarios).map(([label, cell]) => [label, ...scenarios.map(cell)]);
  return { header, body };
}

/** The side-by-side table: one column per scenario, one row per figure. */
export function renderTable(scenarios: readonly ScenarioFigures[]): string {
  const { header, body } = tableOf(scenarios);
  const widths = header.map((_, column) =>
    Math.max(...[header, ...body].map((row) => (row[column] ?? '').length)),
  );
  const line = (row: string[]) =>
    row
      .map((text, column) =>
        column === 0 ? text.padEnd(widths[0] ?? 0) : text.padStart(widths[column] ?? 0),
      )
      .join('  ');
  return [line(header), ...body.map(line)].join('\n');
}

/** The Markdown version of the table, with the rule and the compression stated. */
export function renderMarkdown(
  report: StormReport,
  scenarios: readonly ScenarioFigures[],
  charts: readonly Pick<StormChart, 'file' | 'title'>[],
): string {
  const header = `| | ${scenarios.map((figures) => figures.name).join(' | ')} |`;
  const divider = `|---|${scenarios.map(() => '---:').join('|')}|`;
  const rows = rowsFor(scenarios).map(
    ([label, cell]) => `| ${label} | ${scenarios.map(cell).join(' | ')} |`,
  );
  return [
    '# Storm report',
    '',
    `Generated ${report.generatedAt} on ${report.machine.cpus} cores, Node ${report.machine.node}.`,
    'The same report with its charts on one page: [index.html](index.html).',
    '',
    header,
    divider,
    ...rows,
    '',
    `Verdict rule: ${report.verdictRule}.`,
    '',
    `Time compression: ${report.compressionNote}`,
    '',
    ...scenarios.map((figures) => `- **${figures.name}**: ${figures.description}`),
    '',
    '## Over time',
    '',
    'Every scenario on shared axes: seconds of run below, of production time above.',
    '',
    ...charts.flatMap((chart) => [`![${chart.title}](${chart.file})`, '']),
  ].join('\n');
}

/** Builds the report object (report.json) from the scenario figures. */
export function buildReport(
  scenarios: readonly ScenarioFigures[],
  context: {
    compression: number;
    compressionNote: string;
    cpus: number;
    run: RunShape;
    /** Default now; a simulated run passes its virtual time, so the same seed gives the same bytes. */
    generatedAt?: string;
  },
): StormReport {
  return {
    generatedAt: context.generatedAt ?? new Date().toISOString(),
    machine: { cpus: context.cpus, node: process.versions.node, platform: process.platform },
    compression: context.compression,
    compressionNote: context.compressionNote,
    verdictRule: VERDICT_RULE,
    run: context.run,
    scenarios: scenarios.map(({ series: _series, samples: _samples, ...figures }) => figures),
  };
}
