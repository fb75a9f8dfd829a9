import { join } from 'node:path';
import { spawnManaged, startLms, waitFor } from '@storm-lab/harness';
import { XQUEUE_PATHS } from '@storm-lab/xqueue-protocol';
import { Agent, Client } from 'undici';
import { fixedLoad, type LoadFigures, loopLoad, prefillSubmissions } from './load.ts';
import { cpuSeconds, residentMb, serverPid } from './proc.ts';
import { XQueueSession } from './xqueue-session.ts';

export const SERVICE = { username: 'xqueue_svc', password: 'bench-service' };
export const STUDENT = { username: 'student1', password: 'bench-student' };
export const QUEUE = 'bench';
const TSX = join(import.meta.dirname, '..', 'node_modules', '.bin', 'tsx');

/** Starts the LMS for a measurement: exempt service account, quiet logs; `students` students. */
export function benchLms(env: Record<string, string> = {}, students = 1) {
  return startLms({
    env: {
      LOG_LEVEL: 'error',
      PASSWORD_HASH_ITERATIONS: '1000',
      SINGLE_LOGIN_EXEMPT_USERNAMES: SERVICE.username,
      ...env,
    },
    seed: [
      '--queues',
      QUEUE,
      '--students',
      String(students),
      '--service-username',
      SERVICE.username,
      '--service-password',
      SERVICE.password,
      '--student-password',
      STUDENT.password,
    ],
  });
}

async function startHello() {
  let url = '';
  const child = spawnManaged(TSX, [join(import.meta.dirname, 'hello-server.ts')], {
    onLine: (line) => {
      if (line.includes('"listening"')) url = (JSON.parse(line) as { url: string }).url;
    },
  });
  await waitFor(() => url || undefined, { what: 'the hello-world server' });
  return { url, stop: () => child.stop() };
}

/** The service account logs in, then the load generator sends authenticated get_queuelen requests. */
export async function queuelenLoad(
  lmsUrl: string,
  connections: number,
  seconds: number,
): Promise<LoadFigures> {
  const session = new XQueueSession(lmsUrl);
  await session.login(SERVICE.username, SERVICE.password);
  return fixedLoad({
    url: `${lmsUrl}${XQUEUE_PATHS.getQueuelen}?queue_name=${QUEUE}`,
    headers: session.headers(),
    connections,
    seconds,
  });
}

export interface ThroughputFigures {
  helloWorld: LoadFigures;
  getQueuelen: LoadFigures & { ratioToHello: number };
  cycles: LoadFigures & { ratioToHello: number };
}

/** 1. xqueue throughput, each as a ratio to bare Hono measured in the same run. */
export async function throughput(seconds: number, connections: number): Promise<ThroughputFigures> {
  const hello = await startHello();
  let helloWorld: LoadFigures;
  try {
    helloWorld = await fixedLoad({ url: hello.url, connections, seconds });
  } finally {
    await hello.stop();
  }
  const lms = await benchLms();
  try {
    const getQueuelen = await queuelenLoad(lms.url, connections, seconds);
    // Enough submissions that the queue never runs dry during the measurement.
    const expected = Math.max(2000, Math.round(getQueuelen.requestsPerSecond * 0.4 * seconds));
    await prefillSubmissions({ lmsUrl: lms.url, ...STUDENT, queue: QUEUE, count: expected });
    const agent = new Agent({ connections });
    const pullers = new XQueueSession(lms.url, agent);
    await pullers.login(SERVICE.username, SERVICE.password);
    const cycles = await loopLoad({
      workers: connections,
      seconds,
      step: () => pullers.cycle(QUEUE),
      ok: (outcome) => outcome === 'graded',
    });
    await agent.close();
    const ratio = (figures: LoadFigures) =>
      Math.round((figures.requestsPerSecond / helloWorld.requestsPerSecond) * 1000) / 1000;
    return {
      helloWorld,
      getQueuelen: { ...getQueuelen, ratioToHello: ratio(getQueuelen) },
      cycles: { ...cycles, ratioToHello: ratio(cycles) },
    };
  } finally {
    await lms.stop();
  }
}

export interface LoginCostFigures {
  iterations: number;
  logins: number;
  loginsPerSecond: number;
  cpuMsPerLogin: number;
}

/** 2a. Logins per second and LMS CPU per login at a PBKDF2 iteration count. */
export async function loginCost(
  iterations: number,
  logins: number,
  parallel: number,
): Promise<LoginCostFigures> {
  const lms = await benchLms({ PASSWORD_HASH_ITERATIONS: String(iterations) });
  try {
    const pid = await serverPid(lms.process.pid);
    const cpuBefore = await cpuSeconds(pid);
    const started = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (next < logins) {
          next++;
          await new XQueueSession(lms.url).login(SERVICE.username, SERVICE.password);
        }
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    const cpu = (await cpuSeconds(pid)) - cpuBefore;
    return {
      iterations,
      logins,
      loginsPerSecond: Math.round((logins / seconds) * 10) / 10,
      cpuMsPerLogin: Math.round((cpu * 1000) / logins),
    };
  } finally {
    await lms.stop();
  }
}

export interface FleetFigures {
  connections: number;
  requestsPerSecond: number;
  errors: number;
  requests: number;
  lmsResidentMb: number;
}

/** 3. N concurrent xqueue connections of one exempt account, each its own socket and session. */
export async function fleetScale(counts: number[], seconds: number): Promise<FleetFigures[]> {
  const lms = await benchLms();
  const results: FleetFigures[] = [];
  try {
    const pid = await serverPid(lms.process.pid);
    for (const count of counts) {
      const clients = Array.from({ length: count }, () => new Client(lms.url, { pipelining: 1 }));
      const sessions = clients.map((client) => new XQueueSession(lms.url, client));
      for (let index = 0; index < sessions.length; index += 50) {
        await Promise.all(
          sessions.slice(index, index + 50).map((s) => s.login(SERVICE.username, SERVICE.password)),
        );
      }
      let peakMb = await residentMb(pid);
      const watch = setInterval(
        () => void residentMb(pid).then((mb) => (peakMb = Math.max(peakMb, mb))),
        200,
      );
      const load = await loopLoad({
        workers: count,
        seconds,
        step: async (worker) => {
          const { status } = await (sessions[worker] as XQueueSession).get(
            `${XQUEUE_PATHS.getSubmission}?queue_name=${QUEUE}`,
          );
          return status === 200 ? 'ok' : `error:${status}`;
        },
      });
      clearInterval(watch);
      results.push({
        connections: count,
        requestsPerSecond: load.requestsPerSecond,
        errors: load.errors,
        requests: load.total,
        lmsResidentMb: Math.round(Math.max(peakMb, await residentMb(pid))),
      });
      await Promise.all(clients.map((client) => client.close()));
    }
  } finally {
    await lms.stop();
  }
  return results;
}
