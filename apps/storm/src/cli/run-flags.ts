import { isAbsolute, resolve } from 'node:path';
import { choiceFlag, type FlagSpec, numberFlag, UsageError } from '@storm-lab/cli-kit';
import { PRODUCTION } from '../compression.ts';
import type { RunSettings } from '../settings.ts';

/** The fleet's shape and the run's times: what compare and chaos both take. */
export const FLEET_FLAGS = {
  replicas: { type: 'string' },
  queues: { type: 'string' },
  connections: { type: 'string' },
  duration: { type: 'string' },
  submissions: { type: 'string' },
  students: { type: 'string' },
  compression: { type: 'string' },
  preset: { type: 'string' },
  drain: { type: 'string' },
  'grading-seconds': { type: 'string' },
} as const satisfies FlagSpec;

/** Where the report goes and how: every command that writes one takes them. */
export const OUTPUT_FLAGS = {
  out: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies FlagSpec;

/** The help lines of the fleet flags, with a command's defaults. */
export function fleetHelp(defaults: FleetDefaults, preset: string): string {
  const d = defaults(false);
  const grading =
    d.gradingSeconds === 0 ? '0: instant' : `${d.gradingSeconds}, a jailed grader's run`;
  return `  --replicas N        watcher replica processes            (default ${d.replicas})
  --queues N          queues, each with its own pullers     (default 2)
  --connections N     xqueue connections per queue/replica (default 2)
  --duration S        seconds of student load               (default ${d.durationSeconds})
  --submissions N     submissions                           (default ${d.submissions})
  --students N        students submitting                   (default 4)
  --compression X     production seconds per run second     (default 2)
  --preset production ${preset}
  --drain S           longest wait for grading after load  (default 3)
  --grading-seconds S production seconds one grading takes (default ${grading}),
                      compressed like the rest`;
}

/** The help lines of the output flags, for a command whose report is `file`. */
export function outputHelp(file: string): string {
  return `  --out DIR           report folder                         (default ./storm-report)
  --json              print ${file} to stdout instead of the table
  -h, --help          this help`;
}

/** A count from 1 to `max`. */
export function count(name: string, raw: string | undefined, fallback: number, max = 10_000) {
  return numberFlag(name, raw, fallback, { min: 1, max, integer: true });
}

/** True for `--preset production`, which runs uncompressed and so takes no --compression. */
export function presetOf(preset: string | undefined, compression: string | undefined): boolean {
  if (preset === undefined) return false;
  if (preset !== 'production') {
    throw new UsageError(`--preset must be "production" (got ${JSON.stringify(preset)})`);
  }
  if (compression !== undefined && compression !== '1') {
    throw new UsageError('--preset production runs uncompressed: leave out --compression');
  }
  return true;
}

/** `--compression`, or 1 under `--preset production`. */
export function compressionOf(values: {
  preset?: string | undefined;
  compression?: string | undefined;
}): number {
  return presetOf(values.preset, values.compression)
    ? 1
    : count('compression', values.compression, 2, 1000);
}

/** A command's defaults for the fleet flags, under `--preset production` or not. */
export type FleetDefaults = (production: boolean) => {
  replicas: number;
  durationSeconds: number;
  submissions: number;
  gradingSeconds: number;
};

export const COMPARE_DEFAULTS: FleetDefaults = (production) => ({
  replicas: 2,
  durationSeconds: production ? 120 : 6,
  submissions: production ? 96 : 24,
  gradingSeconds: PRODUCTION.gradingSeconds,
});

type FleetValues = { [K in keyof typeof FLEET_FLAGS]?: string | undefined };

/** The run's settings from the fleet flags over a command's `defaults`, and its `sessions`. */
export function runSettingsOf(
  values: FleetValues,
  defaults: FleetDefaults,
  sessions: Sessions = { sessionStore: 'sqlite', lmsWorkers: 1 },
): RunSettings {
  const production = presetOf(values.preset, values.compression);
  const fallback = defaults(production);
  return {
    replicas: count('replicas', values.replicas, fallback.replicas, 64),
    queues: count('queues', values.queues, 2, 64),
    connections: count('connections', values.connections, 2, 64),
    durationSeconds: count('duration', values.duration, fallback.durationSeconds, 3600),
    submissions: count('submissions', values.submissions, fallback.submissions, 100_000),
    students: count('students', values.students, 4, 1000),
    compression: production ? 1 : count('compression', values.compression, 2, 1000),
    drainSeconds: count('drain', values.drain, production ? 15 : 3, 600),
    gradingSeconds: numberFlag(
      'grading-seconds',
      values['grading-seconds'],
      fallback.gradingSeconds,
      { min: 0, max: 600, unit: 'seconds' },
    ),
    redisUrl: process.env.REDIS_URL || undefined,
    ...sessions,
    serviceUsername: 'xqueue_svc',
    servicePassword: 'storm-lab-service',
    studentPassword: 'storm-lab-student',
  };
}

/** Where the LMS keeps sessions and how many processes share them. */
export const SESSION_FLAGS = {
  'session-store': { type: 'string' },
  'lms-workers': { type: 'string' },
} as const satisfies FlagSpec;

export const SESSION_HELP = `  --session-store S   where the LMS keeps sessions: sqlite (its database file) or
                      redis (the run's Redis, shared as Django's cache backend)
                                                            (default sqlite)
  --lms-workers N     LMS processes behind its port, as gunicorn workers (default 1;
                      more needs --session-store redis)`;

export type Sessions = Pick<RunSettings, 'sessionStore' | 'lmsWorkers'>;

/** `--session-store` and `--lms-workers`: more than one worker shares sessions through Redis. */
export function sessionsOf(values: {
  'session-store'?: string | undefined;
  'lms-workers'?: string | undefined;
}): Sessions {
  const sessionStore = choiceFlag(
    'session-store',
    values['session-store'],
    ['sqlite', 'redis'],
    'sqlite',
  );
  const lmsWorkers = count('lms-workers', values['lms-workers'], 1, 16);
  if (lmsWorkers > 1 && sessionStore !== 'redis') {
    throw new UsageError(
      '--lms-workers above 1 shares sessions through Redis: add --session-store redis',
    );
  }
  return { sessionStore, lmsWorkers };
}

/**
 * The scenarios `--scenario NAME` or `--compare A,B,...` name, or `fallback` when neither is
 * given (the storm runner's and the simulator's rule).
 */
export function scenarioNamesOf(
  values: { scenario?: string | undefined; compare?: string | undefined },
  fallback: readonly string[],
): string[] {
  if (values.scenario && values.compare) {
    throw new UsageError('give --scenario or --compare, not both');
  }
  const names = values.scenario
    ? [values.scenario]
    : values.compare
      ? values.compare
          .split(',')
          .map((name) => name.trim())
          .filter(Boolean)
      : [...fallback];
  if (names.length === 0) throw new UsageError('--compare needs at least one scenario name');
  return names;
}

/** `--out` resolved against the directory `pnpm storm` was typed in. */
export function outDirOf(out: string | undefined): string {
  const base = process.env.INIT_CWD ?? process.cwd();
  const dir = out ?? 'storm-report';
  return isAbsolute(dir) ? dir : resolve(base, dir);
}
