import { Writable } from 'node:stream';
import { expect } from 'vitest';
import { type LmsCliIo, runCli } from '../cli.ts';
import { TestClient, urlFetcher } from './client.ts';

/** Cheap hashes and quiet logs for LMS processes and CLI runs in tests. */
export const FAST = { PASSWORD_HASH_ITERATIONS: '1000', LOG_LEVEL: 'warn' };

/** The LMS app directory, where `pnpm lms` runs. */
export const LMS_DIR = new URL('../..', import.meta.url).pathname;

/** A stream that appends what is written to it to `sink`, at once (no buffering). */
function textStream(sink: { text: string }): Writable {
  return new Writable({
    decodeStrings: false,
    write(chunk: string, _encoding, done) {
      sink.text += chunk;
      done();
    },
  });
}

/**
 * Output and environment for `runCli` in this process: only FAST and `env` as its environment,
 * stdout and stderr both into `output()`, in order.
 *
 * @example
 * const io = captureIo({ DATABASE_PATH: path });
 * await runCli(['migrate'], io); // io.output() === `Migrated ${path}\n`
 */
export function captureIo(env: Record<string, string> = {}): LmsCliIo & { output(): string } {
  const sink = { text: '' };
  const stream = textStream(sink);
  return {
    env: { ...FAST, ...env },
    cwd: LMS_DIR,
    out: stream,
    err: stream,
    output: () => sink.text,
  };
}

/**
 * Runs a CLI command in this process (runCli, as `pnpm lms` does) on the database file, with
 * only FAST and `env` as its environment: no SESSION_STORE unless `env` names one. Resolves
 * with its exit code and output (stdout and stderr, in order).
 *
 * @example
 * await lmsCli(['sessions', 'end', 'student3', '--all'], lms.databasePath);
 */
export async function lmsCli(
  args: string[],
  databasePath: string,
  env: Record<string, string> = {},
): Promise<{ code: number; output: string }> {
  const io = captureIo({ ...env, DATABASE_PATH: databasePath });
  const code = await runCli(args, io);
  return { code, output: io.output() };
}

/**
 * Live browser sessions of USERNAME on the LMS at `url`, one per client (`device 1`, …); the
 * account must be exempt from single login for more than one to stay.
 */
export async function browserSessions(
  url: string,
  username: string,
  count = 2,
  password = 'student-pass',
) {
  const clients = Array.from({ length: count }, (_, index) => {
    const client = new TestClient(urlFetcher(url));
    client.headers['User-Agent'] = `device ${index + 1}`;
    return client;
  });
  for (const client of clients) {
    expect((await client.webLogin(username, password)).status).toBe(200);
    expect((await client.get('/me')).status).toBe(200);
  }
  return clients;
}

/** Asserts that a client's session ended for `reason`: /me says so in header and body. */
export async function expectEnded(client: TestClient, reason: string): Promise<void> {
  const me = await client.get('/me');
  expect(me.status).toBe(401);
  expect(me.headers.get('x-session-end-reason')).toBe(reason);
  expect(await me.json()).toMatchObject({ session_end: { reason } });
}
