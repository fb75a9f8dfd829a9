import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { capturedIo } from '@storm-lab/cli-kit';
import { type LocalLms, parsePrometheus, spawnManaged, startLms } from '@storm-lab/harness';
import { WebClient } from '@storm-lab/lms-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from './cli.ts';
import type { ProbeReport } from './probe.ts';

const APP_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
const TSX = join(APP_DIR, 'node_modules', '.bin', 'tsx');
const SERVICE = { username: 'xqueue_svc', password: 'probe-test-pass' };
const STUDENT_PASSWORD = 'student-test-pass';
const QUEUES = ['a', 'b'];
const K = 4;

/** Runs `pnpm probe` as a process; resolves with its exit code and output. */
async function probe(args: string[], env: Record<string, string> = {}) {
  const child = spawnManaged(TSX, ['src/cli.ts', ...args], {
    cwd: APP_DIR,
    env: { PROBE_PASSWORD: SERVICE.password, ...env },
  });
  const { code } = await child.exited;
  return { code, output: child.output() };
}

/** A short probe with fast polls; the request timeout is long so a loaded machine does not
 * kill connections (the default of 1 s is upstream's, and the summary shows the deaths). */
function probeArgs(lms: LocalLms, extra: string[] = []) {
  return [
    ...['--lms-url', lms.url, '--username', SERVICE.username, '--connections', String(K)],
    ...['--duration', '3', '--poll-interval', '0.1', '--request-timeout', '10', ...extra],
  ];
}

function reportOf(output: string): ProbeReport {
  const line = output.split('\n').find((candidate) => candidate.startsWith('{"verdict"'));
  if (!line) throw new Error(`no JSON report in:\n${output}`);
  return JSON.parse(line) as ProbeReport;
}

/**
 * The requests the LMS has answered, per route, as the LMS counts them (`lms_http_responses_total`
 * in its /metrics), the scrapes of /metrics itself aside.
 */
async function answeredAtLms(lms: LocalLms): Promise<Map<string, number>> {
  const text = await (await fetch(`${lms.url}/metrics`)).text();
  const byRoute = new Map<string, number>();
  for (const sample of parsePrometheus(text)) {
    const route = sample.labels.route;
    if (sample.name !== 'lms_http_responses_total' || !route || route === '/metrics') continue;
    byRoute.set(route, (byRoute.get(route) ?? 0) + sample.value);
  }
  return byRoute;
}

const total = (byRoute: Map<string, number>) =>
  [...byRoute.values()].reduce((sum, count) => sum + count, 0);

/**
 * The xqueue routes the LMS has answered: a probe may only log in and poll, so anything else
 * (put_result above all, at any path) is a request it must never send.
 */
async function xqueueRoutesAtLms(lms: LocalLms): Promise<string[]> {
  const routes = [...(await answeredAtLms(lms)).keys()];
  return routes.filter((route) => !route.startsWith('/api/') && route !== '/login').sort();
}
const PROBE_ROUTES = ['/xqueue/get_submission/', '/xqueue/login/'];

function seeded(env: Record<string, string>) {
  return startLms({
    env: { PASSWORD_HASH_ITERATIONS: '1000', ...env },
    seed: [
      ...['--queues', QUEUES.join(','), '--students', '1'],
      ...['--service-password', SERVICE.password, '--student-password', STUDENT_PASSWORD],
    ],
  });
}

describe('pnpm probe against this LMS enforcing single login (nothing exempt)', () => {
  let lms: LocalLms;
  let student: WebClient;
  const submissions: number[] = [];

  beforeAll(async () => {
    lms = await seeded({});
    student = new WebClient(lms.url);
    await student.login('student1', STUDENT_PASSWORD);
    for (const queue of QUEUES) {
      for (let index = 0; index < 3; index++) {
        const response = await student.request('POST', '/api/submissions', {
          queue_name: queue,
          problem_id: `${queue}-p1`,
          student_response: `answer ${index}`,
        });
        expect(response.status).toBe(201);
        submissions.push(((await response.json()) as { id: number }).id);
      }
    }
  }, 60_000);
  afterAll(() => lms?.stop());

  // xqueue_watcher/client.py XQueueClient._request: every 403 logs in again, evicting a sibling.
  it('prints STORM and the exemption that cures it', async () => {
    const { code, output } = await probe(probeArgs(lms));
    expect(output).toMatch(/^STORM {2}xqueue_svc at http:\/\/127\.0\.0\.1:\d+, 4 connections/m);
    expect(output).toContain('cure: SINGLE_LOGIN_EXEMPT_USERNAMES=xqueue_svc');
    expect(code).toBe(1);
    expect(await xqueueRoutesAtLms(lms)).toEqual(PROBE_ROUTES);
  }, 60_000);

  it('--json carries the verdict, the figures and the suggestion in one object', async () => {
    const { code, output } = await probe(probeArgs(lms, ['--json']));
    const report = reportOf(output);
    expect(report).toMatchObject({
      verdict: 'STORM',
      connections: K,
      username: SERVICE.username,
      suggestion: expect.stringContaining('SINGLE_LOGIN_EXEMPT_USERNAMES=xqueue_svc'),
      pulledSubmission: null,
    });
    expect(report.logins).toBeGreaterThan(2 * K);
    expect(report.forbidden).toBeGreaterThanOrEqual(K);
    expect(report.queue).toMatch(/^storm-probe-[0-9a-f]{12}$/);
    expect(report.loginLatencyMs.p50).toBeGreaterThan(0);
    expect(code).toBe(1);
    expect(await xqueueRoutesAtLms(lms)).toEqual(PROBE_ROUTES);
  }, 60_000);

  it('never takes work: the submissions waiting in every real queue keep their state', async () => {
    for (const id of submissions) {
      const response = await student.request('GET', `/api/submissions/${id}`);
      expect(await response.json()).toMatchObject({ state: 'pending' });
    }
  });

  it('sends at most one request per connection per poll interval when rate-bounded, counted at the LMS', async () => {
    // The CLI bounds every target outside loopback; here the library is driven on loopback.
    const { runProbe } = await import('./probe.ts');
    const before = total(await answeredAtLms(lms));
    await runProbe({
      lmsUrl: lms.url,
      username: SERVICE.username,
      password: SERVICE.password,
      connections: 2,
      durationMs: 3000,
      requestTimeoutMs: 10_000,
      pollIntervalMs: 500,
      loginPollIntervalMs: 1000,
      rateBound: true,
    });
    // Every request the probe sent has been answered before runProbe returns (it stops sending
    // at the end, it does not abandon requests), so the LMS has counted them all.
    const requests = total(await answeredAtLms(lms)) - before;
    expect(requests).toBeGreaterThan(2);
    expect(requests).toBeLessThanOrEqual(2 * (3000 / 500 + 1));
  }, 30_000);

  it('stops at once, posting nothing, if a submission comes back', async () => {
    // The only way to be served one is to name a real queue: the probe never does by itself.
    // `--queue` is not an option, so this drives the library with the real queue's name.
    const { runProbe } = await import('./probe.ts');
    const report = await runProbe({
      lmsUrl: lms.url,
      username: SERVICE.username,
      password: SERVICE.password,
      connections: 2,
      // Far past the test's own timeout: the probe ends here only by stopping at the pull.
      durationMs: 3_600_000,
      requestTimeoutMs: 10_000,
      pollIntervalMs: 100,
      loginPollIntervalMs: 1000,
      rateBound: false,
      queue: 'a',
    });
    expect(report.pulledSubmission).toMatchObject({ queue: 'a' });
    expect(report.pulledSubmission?.header).toMatch(/submission_key/);
    expect(report.durationSeconds).toBeLessThan(3600);
    const states = await Promise.all(
      submissions.map(async (id) => {
        const response = await student.request('GET', `/api/submissions/${id}`);
        return ((await response.json()) as { state: string }).state;
      }),
    );
    // Served but never answered: nothing graded, nothing failed, and not one put_result
    // reached the LMS (a post with a wrong key or an unusable score would change no state).
    expect(states.filter((state) => state === 'graded' || state === 'failed')).toEqual([]);
    expect(await xqueueRoutesAtLms(lms)).toEqual(PROBE_ROUTES);
  }, 60_000);
});

describe('pnpm probe with a wrong password', () => {
  let lms: LocalLms;
  beforeAll(async () => {
    lms = await seeded({});
  }, 60_000);
  afterAll(() => lms?.stop());

  it('says the LMS refused the login and exits 2 at once, instead of retrying as upstream', async () => {
    const { code, output } = await probe(probeArgs(lms, ['--duration', '60']), {
      PROBE_PASSWORD: 'not-the-password',
    });
    expect(output).toContain(
      'the LMS refused the login of xqueue_svc (wrong username or password?)',
    );
    expect(code).toBe(2);
  }, 30_000);
});

describe('pnpm probe against the same LMS with the exemption', () => {
  let lms: LocalLms;
  beforeAll(async () => {
    lms = await seeded({ SINGLE_LOGIN_EXEMPT_USERNAMES: SERVICE.username });
  }, 60_000);
  afterAll(() => lms?.stop());

  it('prints HEALTHY with exactly K logins and no 403', async () => {
    const { code, output } = await probe(probeArgs(lms, ['--json']));
    const report = reportOf(output);
    expect(report).toMatchObject({
      verdict: 'HEALTHY',
      logins: K,
      forbidden: 0,
      reloginGiveups: 0,
      connectionsAlive: K,
      suggestion: null,
    });
    expect(report.polls).toBeGreaterThan(K);
    expect(code).toBe(0);
    expect(await xqueueRoutesAtLms(lms)).toEqual(PROBE_ROUTES);
  }, 60_000);
});

describe('pnpm probe command line', () => {
  it('--help says what it does, how the password is read and the exit codes', async () => {
    const { code, output } = await probe(['--help']);
    expect(output).toContain('Usage: pnpm probe --lms-url URL --username NAME');
    expect(output).toContain('PROBE_PASSWORD');
    expect(output).toContain('Exit status: 0 HEALTHY, 1 STORM');
    expect(code).toBe(0);
  });

  it('refuses a password on the command line', async () => {
    const { code, output } = await probe(['--lms-url', 'http://127.0.0.1:1', '--password', 'x']);
    expect(output).toContain('set PROBE_PASSWORD or answer the prompt');
    expect(code).toBe(2);
  });

  it('needs --yes for a host outside loopback, and sends nothing without it', async () => {
    const { code, output } = await probe([
      '--lms-url',
      'https://lms.example.com',
      '--username',
      'u',
    ]);
    expect(output).toContain('lms.example.com is not on this machine');
    expect(output).toContain('Add --yes');
    expect(code).toBe(2);
  });

  it('says what is wrong with a bad number or a missing option', async () => {
    const bad = await probe([
      '--lms-url',
      'http://127.0.0.1:1',
      '--username',
      'u',
      '--connections',
      '0',
    ]);
    expect(bad.output).toContain('--connections must be an integer from 1 to 64 (got "0")');
    expect(bad.code).toBe(2);
    const missing = await probe(['--username', 'u']);
    expect(missing.output).toContain('--lms-url is required');
  });

  it('runs in process: a mistake returns 2 and says where the help is, without exiting', async () => {
    const io = capturedIo();
    const argv = ['--username', 'u', '--lms-url', 'x://y', '--duration', '0'];
    expect(await main(argv, { ...io, env: {} })).toBe(2);
    expect(io.stderr).toBe(
      '--lms-url: expected http:// or https://, got "x:" (see pnpm probe --help)\n',
    );
  });

  it('without PROBE_PASSWORD and without a terminal, asks for the variable', async () => {
    const { code, output } = await probe(['--lms-url', 'http://127.0.0.1:1', '--username', 'u'], {
      PROBE_PASSWORD: '',
    });
    expect(output).toContain('set PROBE_PASSWORD');
    expect(code).toBe(2);
  });
});
