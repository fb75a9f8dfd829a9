import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type LocalLms,
  type StartWatchersOptions,
  startLms,
  startWatchers,
  type WatcherFleet,
  waitFor,
} from '@storm-lab/harness';
import { CookieJar } from '@storm-lab/lms-client';
import { testRedis } from './redis.ts';

export const SERVICE_USERNAME = 'xqueue_svc';
export const SERVICE_PASSWORD = 'svc-test-pass';
const STUDENT_PASSWORD = 'student-test-pass';

export async function scrape(url: string): Promise<string> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return response.text();
}

/** A student logged in through the LMS's web login (CSRF cookie echoed in X-CSRFToken). */
export async function loginStudent(lmsUrl: string, username: string) {
  const jar = new CookieJar(Date.now);
  const call = async (method: string, path: string, body?: unknown) => {
    const headers: Record<string, string> = {
      cookie: jar.header(),
      'X-CSRFToken': jar.get('csrftoken') ?? '',
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${lmsUrl}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    jar.store(response.headers.getSetCookie());
    const json = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    return { status: response.status, json };
  };
  await call('GET', '/login');
  const login = await call('POST', '/login', { username, password: STUDENT_PASSWORD });
  if (login.status !== 200)
    throw new Error(`student login ${username}: ${login.status} ${JSON.stringify(login.json)}`);
  return {
    async submit(queue: string, problem: string, response: string): Promise<number> {
      const created = await call('POST', '/api/submissions', {
        queue_name: queue,
        problem_id: problem,
        student_response: response,
      });
      if (created.status !== 201)
        throw new Error(`submit: ${created.status} ${JSON.stringify(created.json)}`);
      return created.json.id as number;
    },
    async get(id: number) {
      return (await call('GET', `/api/submissions/${id}`)).json as {
        state: string;
        correct?: boolean;
        score?: number;
        msg?: string;
      };
    },
  };
}

export type Student = Awaited<ReturnType<typeof loginStudent>>;

/** A submission the test made, and the grade it must get. */
export interface Expected {
  id: number;
  student: Student;
  correct: boolean;
  score: number;
}

export interface LabOptions {
  queues: string[];
  replicas: number;
  connections: number;
  lmsEnv: Record<string, string>;
  watcherEnv?: Record<string, string>;
  /** conf.d files, name to JSON; the queues then come from there (env still overrides). */
  confD?: Record<string, unknown>;
  /** Every replica's event lines, with their fields (see `startWatchers`). */
  onEvent?: StartWatchersOptions['onEvent'];
}

/** Redis, a seeded LMS and a watcher fleet, all real processes, with one `stop()`. */
export interface Lab {
  lms: LocalLms;
  fleet: WatcherFleet;
  students: Student[];
  lmsMetrics(): Promise<string>;
  stop(): Promise<void>;
}

async function writeConfigDir(confD: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'watcher-lab-'));
  await mkdir(join(dir, 'conf.d'));
  for (const [file, json] of Object.entries(confD)) {
    await writeFile(join(dir, 'conf.d', file), JSON.stringify(json));
  }
  return dir;
}

/**
 * Starts Redis (or uses REDIS_URL), a seeded LMS, `replicas` watcher processes with short poll
 * and lock times, and logs in five students.
 *
 * @example
 * const lab = await startLab({ queues: ['a'], replicas: 2, connections: 2, lmsEnv: {} });
 * try { ... } finally { await lab.stop(); }
 */
export async function startLab(options: LabOptions): Promise<Lab> {
  const cleanups: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };
  try {
    const redis = await testRedis();
    cleanups.push(() => redis.stop());
    const redisUrl = redis.url;
    const lms = await startLms({
      env: { PASSWORD_HASH_ITERATIONS: '1000', ...options.lmsEnv },
      seed: [
        ...['--queues', options.queues.join(','), '--students', '5'],
        ...['--service-password', SERVICE_PASSWORD, '--student-password', STUDENT_PASSWORD],
      ],
    });
    cleanups.push(() => lms.stop());
    const configDir = options.confD ? await writeConfigDir(options.confD) : undefined;
    if (configDir) cleanups.push(() => rm(configDir, { recursive: true, force: true }));
    const fleet = await startWatchers({
      replicas: options.replicas,
      configDir,
      onEvent: options.onEvent,
      env: {
        REDIS_URL: redisUrl,
        LMS_URL: lms.url,
        XQUEUE_USERNAME: SERVICE_USERNAME,
        XQUEUE_PASSWORD: SERVICE_PASSWORD,
        ...(configDir ? {} : { WATCHER_QUEUES: options.queues.join(',') }),
        WATCHER_CONNECTIONS: String(options.connections),
        WATCHER_QUEUE_PREFIX: `lab-${process.pid}-${Date.now()}`,
        XQWATCHER_POLL_INTERVAL: '0.05',
        XQWATCHER_LOGIN_POLL_INTERVAL: '0.2',
        XQWATCHER_REQUESTS_TIMEOUT: '5',
        XQWATCHER_POLL_TIME: '0.5',
        WATCHER_JOB_LOCK_MS: '1500',
        LOG_LEVEL: 'warn',
        ...options.watcherEnv,
      },
    });
    cleanups.push(() => fleet.stopAll());
    const students = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => loginStudent(lms.url, `student${n}`)),
    );
    return { lms, fleet, students, lmsMetrics: () => scrape(`${lms.url}/metrics`), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Submits `count` answers round-robin over queues, problems and students: every other one right.
 * The expected score follows the queue's handler (`scoreOf`).
 */
export async function submitMany(
  lab: Lab,
  count: number,
  queues: string[],
  scoreOf: (queue: string, correct: boolean) => number = (_, correct) => (correct ? 1 : 0),
): Promise<Expected[]> {
  const made: Expected[] = [];
  for (let i = 0; i < count; i += 1) {
    const queue = queues[i % queues.length]!;
    const problem = `${queue}-p${(i % 3) + 1}`;
    const student = lab.students[i % lab.students.length]!;
    const correct = i % 2 === 0;
    const response = correct ? `answer-${problem}` : `answer-${problem} extra`;
    const id = await student.submit(queue, problem, response);
    made.push({ id, student, correct, score: scoreOf(queue, correct) });
  }
  return made;
}

/** Polls the student API until every submission is graded; returns what the students see. */
export async function waitAllGraded(expected: Expected[], timeoutMs: number) {
  let graded = 0;
  try {
    return await waitFor(
      async () => {
        const views = await Promise.all(expected.map((one) => one.student.get(one.id)));
        graded = views.filter((view) => view.state === 'graded').length;
        return graded === views.length ? views : undefined;
      },
      { timeoutMs, intervalMs: 200, what: 'all submissions graded' },
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}: ${graded} of ${expected.length} graded`);
  }
}
