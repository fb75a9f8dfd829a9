import { openDatabase, parseEnv, SEED_DEFAULTS, seed } from '@storm-lab/lms';
import { XQueueClient } from '@storm-lab/lms-client';
import { pino } from 'pino';
import { freeHash, type LmsCosts, SimLms, type SimLmsOptions } from './lms-host.ts';
import { seededRandom } from './random.ts';
import { drive, type VirtualClock } from './virtual-clock.ts';

/** The service account's password in {@link testLmsDatabase}. */
const SERVICE_PASSWORD = 'xqueue-pass';

/**
 * For the simulator's tests: an in-memory LMS database seeded with queue `q` and the service
 * account, its hashes of `iterations` (stored at no cost), and the LMS's config to match.
 */
export async function testLmsDatabase(iterations: number) {
  const database = openDatabase({ path: ':memory:', synchronous: 'normal' });
  const config = parseEnv(
    { LOG_LEVEL: 'silent', PASSWORD_HASH_ITERATIONS: String(iterations) },
    process.cwd(),
  );
  await seed(
    database.db,
    { ...SEED_DEFAULTS, queues: ['q'], servicePassword: SERVICE_PASSWORD },
    { iterations, now: Date.now(), hash: freeHash },
  );
  return { database, config };
}

/** The current xqueue-watcher's client of queue `q`, as the service account, against `lms`. */
export function serviceClient(lms: SimLms, requestsTimeoutMs: number): XQueueClient {
  return new XQueueClient({
    serverUrl: lms.baseUrl,
    queue: 'q',
    username: SEED_DEFAULTS.serviceUsername,
    password: SERVICE_PASSWORD,
    mode: 'current',
    instanceId: null,
    requestsTimeoutMs,
    logger: pino({ level: 'silent' }),
    now: Date.now,
    fetch: lms.fetchFor({ address: '10.0.0.1' }),
  });
}

/** A quiet `SimLms` over a test database: no faults, seed 1, `options` on top. */
export function testSimLms(
  { database, config }: Awaited<ReturnType<typeof testLmsDatabase>>,
  costs: LmsCosts,
  options: Partial<SimLmsOptions> = {},
): SimLms {
  return new SimLms({
    database,
    config,
    costs,
    faults: { dropResponseRate: 0, hashSlowdown: 1 },
    random: seededRandom(1),
    logger: pino({ level: 'silent' }),
    ...options,
  });
}

/** Moves the virtual clock until `work` settles; its value and the virtual ms it took. */
export async function timedOn<T>(
  clock: VirtualClock,
  work: () => Promise<T>,
): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  const value = await drive(clock, work());
  return { value, ms: Date.now() - started };
}
