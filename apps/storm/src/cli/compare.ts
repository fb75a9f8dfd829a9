import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { pathToFileURL } from 'node:url';
import { type CliIo, parseFlags, type Subcommand, UsageError } from '@storm-lab/cli-kit';
import { CleanupStack, exitOnSignal } from '../cleanup.ts';
import { compressionNote } from '../compression.ts';
import { type ScenarioFigures, VERDICT_RULE } from '../figures.ts';
import { ProgressDisplay } from '../progress.ts';
import { buildReport, renderTable } from '../report.ts';
import { runScenario } from '../run-scenario.ts';
import {
  DEFAULT_COMPARISON,
  listScenarios,
  loadScenario,
  type Scenario,
  ScenarioError,
} from '../scenarios.ts';
import { hashShare, type RunSettings } from '../settings.ts';
import { writeReport } from '../write-report.ts';
import {
  COMPARE_DEFAULTS,
  count,
  FLEET_FLAGS,
  fleetHelp,
  OUTPUT_FLAGS,
  outDirOf,
  outputHelp,
  runSettingsOf,
  SESSION_FLAGS,
  SESSION_HELP,
  scenarioNamesOf,
  sessionsOf,
} from './run-flags.ts';

export const COMPARE_FLAGS = {
  scenario: { type: 'string' },
  compare: { type: 'string' },
  list: { type: 'boolean' },
  ...FLEET_FLAGS,
  parallel: { type: 'string' },
  ...SESSION_FLAGS,
  ...OUTPUT_FLAGS,
  open: { type: 'boolean' },
} as const;

export const COMPARE_HELP = `pnpm storm compare: run scenarios side by side and report them (the default command)

Usage:
  pnpm storm                          compare ${DEFAULT_COMPARISON.join(', ')}
  pnpm storm --scenario NAME          run one scenario (a built-in name or a path to a .json file)
  pnpm storm --compare A,B,...        compare the named scenarios
  pnpm storm --list                   list the built-in scenarios (and chaos)
  pnpm storm --preset production      uncompressed: production values throughout (1,000,000
                                      PBKDF2 iterations, 1 s polls, 1 s request timeout,
                                      10 s POLL_TIME, 300 s lock, restarts 10 s..5 min);
                                      defaults --duration 120 --submissions 96 --drain 15
  (each also as pnpm storm compare ...)

Options:
  --scenario NAME     one scenario
  --compare A,B,...   the scenarios to compare            (default: the five above)
  --list              list the built-in scenarios and exit
${fleetHelp(COMPARE_DEFAULTS, 'compression 1 and longer defaults (see above)')}
  --parallel N        scenarios run at the same time        (default 1; more is faster
                      but a storm's hashing then slows its neighbour's logins)
${SESSION_HELP}
  --open              at the end, open the report page (index.html) in the desktop's
                      browser, or print its file:// address where there is no desktop
${outputHelp('report.json')}

Time compression X divides every production time and cost by X, so each keeps its ratio to
the others: PBKDF2 iterations (1,000,000/X), POLL_INTERVAL (1 s/X), LOGIN_POLL_INTERVAL (5 s/X),
REQUESTS_TIMEOUT (1 s/X), POLL_TIME (10 s/X), XQUEUE_LOCK_SECONDS (300/X) and the restart
backoff of replicas (Kubernetes' 10 s doubling to 5 min, /X).

Each scenario gets its own private redis-server (or REDIS_URL), a freshly seeded LMS and the
watcher fleet as real processes; a replica that exits is restarted, as Kubernetes does. Ctrl-C
stops everything and removes temporary files.`;

const STOPPING = 'stopping every process of this run...';

/** What `pnpm storm compare` was asked to do. */
export interface CompareOptions {
  help: boolean;
  list: boolean;
  json: boolean;
  open: boolean;
  names: string[];
  settings: RunSettings;
  outDir: string;
  parallel: number;
}

/** Parses compare's flags; a mistake is a `UsageError`. */
export function parseCompare(argv: readonly string[]): CompareOptions {
  const { values } = parseFlags(argv, COMPARE_FLAGS);
  const names = scenarioNamesOf(values, DEFAULT_COMPARISON);
  if (names.includes('chaos')) {
    throw new UsageError('chaos is a command of its own: pnpm storm chaos');
  }
  return {
    help: values.help ?? false,
    list: values.list ?? false,
    json: values.json ?? false,
    open: values.open ?? false,
    names,
    settings: runSettingsOf(values, COMPARE_DEFAULTS, sessionsOf(values)),
    outDir: outDirOf(values.out),
    parallel: count('parallel', values.parallel, 1, 16),
  };
}

/** `pnpm storm compare`: every scenario with real processes, then the report. */
export const compare: Subcommand = {
  summary: 'run scenarios side by side and report them (the default command)',
  run: async (argv, io) => {
    const options = parseCompare(argv);
    if (options.help) {
      io.out.write(`${COMPARE_HELP}\n`);
      return 0;
    }
    if (options.list) {
      const names = [...(await listScenarios()), 'chaos'].sort();
      io.out.write(`${names.join('\n')}\n`);
      return 0;
    }
    return runComparison(options, await loadScenarios(options), io);
  },
};

async function loadScenarios({ names, settings }: CompareOptions): Promise<Scenario[]> {
  const variables = {
    serviceUsername: settings.serviceUsername,
    totalConnections: settings.replicas * settings.queues * settings.connections,
  };
  try {
    return await Promise.all(names.map((name) => loadScenario(name, variables)));
  } catch (error) {
    if (error instanceof ScenarioError) throw new UsageError(error.message);
    throw error;
  }
}

async function runComparison(
  options: CompareOptions,
  scenarios: Scenario[],
  io: CliIo,
): Promise<number> {
  const { settings } = options;
  const active = new Set<CleanupStack>();
  const interrupted = exitOnSignal(
    STOPPING,
    () => Promise.all([...active].map((stack) => stack.run())),
    130,
  );
  // With --json, stdout carries the report alone.
  const talk = options.json ? io.err : io.out;
  const display = new ProgressDisplay(talk);
  const results: ScenarioFigures[] = new Array(scenarios.length);
  let next = 0;
  // One at a time by default: a storm keeps both cores busy hashing passwords, so a scenario
  // run beside it would measure its neighbour's storm (a cure's first logins time out).
  const worker = async () => {
    while (!interrupted() && next < scenarios.length) {
      const index = next++;
      const stack = new CleanupStack();
      active.add(stack);
      try {
        const scenario = scenarios[index] as Scenario;
        results[index] = await runScenario(scenario, settings, stack, (progress) =>
          display.update(progress),
        );
      } finally {
        if (!interrupted()) {
          await stack.run();
          active.delete(stack);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.parallel, scenarios.length) }, worker));
  if (interrupted()) return new Promise(() => undefined); // the signal handler exits

  const note = compressionNote(
    settings.compression,
    settings.durationSeconds,
    settings.gradingSeconds,
    hashShare(settings),
  );
  const report = buildReport(results, {
    compression: settings.compression,
    compressionNote: note,
    cpus: cpus().length,
    run: {
      replicas: settings.replicas,
      queues: settings.queues,
      connections: settings.connections,
      loadSeconds: settings.durationSeconds,
      submissions: settings.submissions,
      students: settings.students,
      drainSeconds: settings.drainSeconds,
      gradingSeconds: settings.gradingSeconds,
    },
  });
  const page = await writeReport(options.outDir, report, results);
  if (options.json) {
    io.out.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    io.out.write(`\n${renderTable(results)}\n\n`);
    io.out.write(`Verdict rule: ${VERDICT_RULE}.\n`);
    io.out.write(`Time compression: ${note}\n`);
    io.out.write(`Report: ${page} (report.md, report.json and the charts as SVG beside it)\n`);
  }
  if (options.open) openPage(page, talk);
  return 0;
}

/**
 * Opens the page with xdg-open where a desktop session exists; otherwise (or when that fails)
 * prints its file:// address to open by hand.
 */
function openPage(page: string, out: NodeJS.WritableStream) {
  const url = pathToFileURL(page).href;
  const desktop = Boolean(process.env.DISPLAY || process.env.WAYLAND_DISPLAY);
  if (desktop) {
    const child = spawn('xdg-open', [url], { detached: true, stdio: 'ignore' });
    child.on('error', () => out.write(`Open ${url} in a browser (xdg-open failed).\n`));
    child.unref();
    out.write(`Opening ${url}\n`);
    return;
  }
  out.write(`No desktop here: open ${url} in a browser.\n`);
}
