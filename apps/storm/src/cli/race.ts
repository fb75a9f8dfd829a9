import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type CliIo, parseFlags, type Subcommand } from '@storm-lab/cli-kit';
import { CleanupStack, exitOnSignal } from '../cleanup.ts';
import { type RaceFigures, renderRace, runRace } from '../race.ts';
import {
  compressionOf,
  count,
  OUTPUT_FLAGS,
  outDirOf,
  outputHelp,
  SESSION_FLAGS,
  SESSION_HELP,
  type Sessions,
  sessionsOf,
} from './run-flags.ts';

export const RACE_FLAGS = {
  logins: { type: 'string' },
  rounds: { type: 'string' },
  compression: { type: 'string' },
  preset: { type: 'string' },
  ...SESSION_FLAGS,
  ...OUTPUT_FLAGS,
} as const;

export const RACE_HELP = `pnpm storm race: upstream's unlocked login steps against the atomic admission

Usage:
  pnpm storm race [options]           (also: pnpm storm --race [options])

One single-session account logged in --logins times at once, --rounds times, under
SINGLE_LOGIN_ENFORCEMENT atomic and upstream (edx-platform's unlocked steps): live sessions
per round, side by side; writes race.json. Exits 0 when atomic kept exactly one session in
every round, 1 otherwise. With --lms-workers N --session-store redis the logins spread over N
LMS processes sharing Redis sessions.

Options:
  --logins K          logins sent at the same moment        (default 8)
  --rounds N          rounds                                (default 20)
  --compression X     production seconds per run second: the login's PBKDF2 cost is
                      divided by X                          (default 2)
  --preset production uncompressed: 1,000,000 PBKDF2 iterations
${SESSION_HELP}
${outputHelp('race.json')}`;

export interface RaceCommandOptions {
  help: boolean;
  json: boolean;
  logins: number;
  rounds: number;
  compression: number;
  sessions: Sessions;
  outDir: string;
}

/** Parses race's flags; a mistake is a `UsageError`. */
export function parseRace(argv: readonly string[]): RaceCommandOptions {
  const { values } = parseFlags(argv, RACE_FLAGS);
  return {
    help: values.help ?? false,
    json: values.json ?? false,
    logins: count('logins', values.logins, 8, 64),
    rounds: count('rounds', values.rounds, 20, 1000),
    compression: compressionOf(values),
    sessions: sessionsOf(values),
    outDir: outDirOf(values.out),
  };
}

/** `pnpm storm race`: the race under both enforcements, side by side. */
export const race: Subcommand = {
  summary: 'one account logged in many times at once: atomic admission against upstream',
  run: async (argv, io) => {
    const options = parseRace(argv);
    if (options.help) {
      io.out.write(`${RACE_HELP}\n`);
      return 0;
    }
    return runRaceCommand(options, io);
  },
};

async function runRaceCommand(options: RaceCommandOptions, io: CliIo): Promise<number> {
  const { logins, rounds, compression, sessions } = options;
  const cleanup = new CleanupStack();
  const interrupted = exitOnSignal(
    'stopping every process of this run...',
    () => cleanup.run(),
    130,
  );
  const out = options.json ? io.err : io.out;
  out.write(
    `race: ${logins} logins at once of one single-session account, ${rounds} rounds, ` +
      `under each SINGLE_LOGIN_ENFORCEMENT (PBKDF2 at ${compression}x; ` +
      `${sessions.lmsWorkers} LMS worker${sessions.lmsWorkers === 1 ? '' : 's'}, sessions in ${sessions.sessionStore})\n`,
  );
  let figures: RaceFigures[];
  try {
    figures = await runRace(
      {
        logins,
        rounds,
        compression,
        lmsWorkers: sessions.lmsWorkers,
        sessionStore: sessions.sessionStore,
        redisUrl: process.env.REDIS_URL || undefined,
        onRound: (mode, round) =>
          out.write(
            `${mode.padEnd(8)} round ${String(round.round).padStart(3)}  live ${round.liveTotal} ` +
              `(${round.liveOfRound} of this round's ${logins})\n`,
          ),
      },
      cleanup,
    );
  } finally {
    if (!interrupted()) await cleanup.run();
  }
  if (interrupted()) return new Promise(() => undefined); // the signal handler exits
  const report = { generatedAt: new Date().toISOString(), logins, figures };
  await mkdir(options.outDir, { recursive: true });
  await writeFile(join(options.outDir, 'race.json'), `${JSON.stringify(report, null, 2)}\n`);
  if (options.json) io.out.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    io.out.write(
      `\n${renderRace(figures, rounds)}\n\n` +
        'atomic: read, decide, evict and record in one transaction. upstream: ' +
        "edx-platform's set_login_session, each step its own statement with no lock: logins " +
        'that overlap all read the same slot, all survive, and all but the last are never ' +
        `tracked again.\nReport: ${options.outDir}/race.json\n`,
    );
  }
  const atomic = figures.find((f) => f.mode === 'atomic');
  return atomic && atomic.roundsSingle === rounds ? 0 : 1;
}
