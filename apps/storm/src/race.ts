import { startLms, useRedis } from '@storm-lab/harness';
import { WebClient } from '@storm-lab/lms-client';
import type { CleanupStack } from './cleanup.ts';
import { compress } from './compression.ts';

/** `SINGLE_LOGIN_ENFORCEMENT`: this project's atomic admission, or edx-platform's steps. */
export const ENFORCEMENTS = ['atomic', 'upstream'] as const;
export type Enforcement = (typeof ENFORCEMENTS)[number];

export interface RaceOptions {
  /** Logins of the one account sent at the same moment, each from its own client. */
  logins: number;
  rounds: number;
  /** Production seconds per run second: the login's PBKDF2 cost is compressed like a storm's. */
  compression: number;
  /** LMS_WORKERS (default 1): the logins spread over the workers' connections. */
  lmsWorkers?: number;
  /** SESSION_STORE (default sqlite); `redis` starts a private Redis (or uses `redisUrl`). */
  sessionStore?: 'sqlite' | 'redis';
  redisUrl?: string;
  /** Called after each round, for a live line. */
  onRound?: (mode: Enforcement, round: RaceRound) => void;
}

/** One round: `logins` logins at once, then every client made so far asked whether it is in. */
export interface RaceRound {
  round: number;
  /** Of this round's clients, how many still have a session after the round. */
  liveOfRound: number;
  /** Every live session of the account: this round's and any left over from earlier rounds. */
  liveTotal: number;
}

export interface RaceFigures {
  mode: Enforcement;
  logins: number;
  rounds: RaceRound[];
  /** Rounds that ended with exactly one live session of the account, as the flag promises. */
  roundsSingle: number;
  maxLive: number;
  liveAtEnd: number;
}

const USERNAME = 'student1';
const PASSWORD = 'storm-lab-race';

/** Sends every client's login POST at the same moment, after each has its CSRF cookie. */
async function loginAtOnce(clients: WebClient[]): Promise<void> {
  await Promise.all(
    clients.map(async (client) => (await client.request('GET', '/login')).arrayBuffer()),
  );
  await Promise.all(
    clients.map(async (client) => {
      const response = await client.request('POST', '/login', {
        username: USERNAME,
        password: PASSWORD,
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`race login failed: ${response.status} ${text}`);
    }),
  );
}

async function liveCount(clients: readonly WebClient[]): Promise<number> {
  const live = await Promise.all(clients.map((client) => client.isLoggedIn()));
  return live.filter(Boolean).length;
}

/**
 * One enforcement mode: a fresh LMS with the flag on and nothing exempt, one person's account,
 * `rounds` rounds of `logins` logins at once.
 */
async function raceMode(
  mode: Enforcement,
  options: RaceOptions,
  cleanup: CleanupStack,
): Promise<RaceFigures> {
  const redis = options.sessionStore === 'redis' ? await useRedis(options.redisUrl) : null;
  if (redis) cleanup.add(() => redis.stop());
  const lms = await startLms({
    env: {
      LOG_LEVEL: 'warn',
      PREVENT_CONCURRENT_LOGINS: 'true',
      SINGLE_LOGIN_ENFORCEMENT: mode,
      PASSWORD_HASH_ITERATIONS: String(compress(options.compression).hashIterations),
      LMS_WORKERS: String(options.lmsWorkers ?? 1),
      ...(redis
        ? {
            SESSION_STORE: 'redis',
            SESSION_REDIS_URL: redis.url,
            SESSION_REDIS_PREFIX: `storm-race-${process.pid}-${mode}:`,
          }
        : {}),
    },
    seed: ['--queues', 'race', '--students', '1', '--student-password', PASSWORD],
  });
  const stop = () => lms.stop();
  cleanup.add(stop);
  try {
    const everyone: WebClient[] = [];
    const rounds: RaceRound[] = [];
    for (let round = 1; round <= options.rounds; round++) {
      const clients = Array.from({ length: options.logins }, () => new WebClient(lms.url));
      everyone.push(...clients);
      await loginAtOnce(clients);
      const result = {
        round,
        liveOfRound: await liveCount(clients),
        liveTotal: await liveCount(everyone),
      };
      rounds.push(result);
      options.onRound?.(mode, result);
    }
    return {
      mode,
      logins: options.logins,
      rounds,
      roundsSingle: rounds.filter((round) => round.liveTotal === 1).length,
      maxLive: Math.max(...rounds.map((round) => round.liveTotal)),
      liveAtEnd: rounds.at(-1)?.liveTotal ?? 0,
    };
  } finally {
    await stop();
  }
}

/**
 * `pnpm storm race`: the same race under both enforcements, one after the other. Under
 * `upstream` (edx-platform's `set_login_session`: read the profile's slot, delete that one
 * session, write the new id, with no lock around the steps) logins that overlap all read the
 * same slot, so all of them survive and all but the last are never tracked again; `atomic`
 * keeps exactly one.
 *
 * @example
 * const [atomic, upstream] = await runRace({ logins: 8, rounds: 20, compression: 2 }, cleanup);
 */
export async function runRace(options: RaceOptions, cleanup: CleanupStack): Promise<RaceFigures[]> {
  const figures: RaceFigures[] = [];
  for (const mode of ENFORCEMENTS) figures.push(await raceMode(mode, options, cleanup));
  return figures;
}

/** The side-by-side table of a race, for the terminal. */
export function renderRace(figures: readonly RaceFigures[], rounds: number): string {
  const rows: [string, (f: RaceFigures) => string][] = [
    ['rounds with exactly 1 live session', (f) => `${f.roundsSingle}/${rounds}`],
    ['most live sessions after a round', (f) => String(f.maxLive)],
    ['live sessions at the end', (f) => String(f.liveAtEnd)],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  const header = `${''.padEnd(width)}  ${figures.map((f) => f.mode.padStart(8)).join('  ')}`;
  const lines = rows.map(
    ([label, cell]) =>
      `${label.padEnd(width)}  ${figures.map((f) => cell(f).padStart(8)).join('  ')}`,
  );
  return [header, ...lines].join('\n');
}
