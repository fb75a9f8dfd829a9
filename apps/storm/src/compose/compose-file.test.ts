import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, spawnManaged, waitFor } from '@storm-lab/harness';
import { afterEach, describe, expect, it } from 'vitest';

// docker-compose.yml read as text (no YAML parser here) and its shell scripts run on this host
// with their container paths moved to a temporary folder: what `pnpm compose:check` then proves
// with real containers (minutes, root), checked here in seconds.

const FILE = join(dirname(fileURLToPath(import.meta.url)), '../../../../docker-compose.yml');
const COMPOSE = await readFile(FILE, 'utf8');

/** One service's block of the file, from `  name:` to the next top-level or service key. */
function service(name: string): string {
  const start = COMPOSE.indexOf(`\n  ${name}:\n`);
  if (start < 0) throw new Error(`no service ${name} in docker-compose.yml`);
  const rest = COMPOSE.slice(start + 1);
  const end = rest.slice(1).search(/\n(?: {2})?\S/);
  return end < 0 ? rest : rest.slice(0, end + 2);
}

/** The `sh -c` script of a service's `command: [sh, -c, |...]`, as the shell receives it. */
function script(name: string, paths: Record<string, string>): string {
  const block = service(name);
  const body = block.slice(block.indexOf('      - |\n') + '      - |\n'.length);
  const lines = body.split('\n');
  const end = lines.findIndex((line) => line !== '' && !line.startsWith('        '));
  let text = lines
    .slice(0, end)
    .map((line) => line.slice(8))
    .join('\n')
    .replaceAll('$$', '$');
  for (const [from, to] of Object.entries(paths)) text = text.replaceAll(from, to);
  return text;
}

/** Sends RESP commands to a Redis on PORT and resolves with its raw answer. */
function redisSay(port: number, ...commands: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk.toString();
      if (answer.split('\r\n').length > commands.length) socket.end();
    });
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
    socket.write(commands.map((command) => `${command}\r\n`).join(''));
  });
}

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'compose-file-'));
  stops.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('docker-compose.yml', () => {
  it('publishes the LMS on 127.0.0.1 unless LMS_BIND says otherwise', () => {
    const ports = /ports:\n {6}- "(.*)"\n/.exec(service('lms'))?.[1];
    expect(ports).toBe(['$', '{LMS_BIND:-127.0.0.1}:$', '{LMS_PORT:-8000}:8000'].join(''));
  });

  it('passes METRICS_TOKEN to the LMS, and sets no TRUST_PROXY: no proxy stands in front', () => {
    expect(service('lms')).toMatch(/^ {6}METRICS_TOKEN: \$\{METRICS_TOKEN:-\}$/m);
    expect(COMPOSE).not.toMatch(/^\s+TRUST_PROXY:/m);
  });

  it('puts the session Redis on a network of its own that only the LMS joins', () => {
    expect(service('session-redis')).toMatch(/networks:\n {6}- sessions\n/);
    expect(service('lms')).toMatch(/networks:\n {6}- default\n {6}- sessions\n/);
    for (const other of ['redis', 'watcher']) expect(service(other)).not.toContain('sessions');
    expect(COMPOSE).toMatch(/\nnetworks:\n {2}# [^\n]*\n {2}sessions:\n {4}internal: true\n/);
  });

  it('passes no password as a command-line argument', () => {
    expect(COMPOSE).not.toMatch(/--(service|staff|student)-password(?!-file)\b/);
    expect(COMPOSE).not.toMatch(/--requirepass|redis-cli[^\n]*\s-a\s/);
  });

  it('starts the session Redis with a generated password that its clients need', async () => {
    const dir = await tempDir();
    const port = await freePort();
    const text = script('session-redis', {
      '/data/': `${dir}/`,
      'exec redis-server ': `exec redis-server --port ${port} --bind 127.0.0.1 `,
    });
    const redis = spawnManaged('sh', ['-c', text]);
    stops.push(() => redis.stop());
    const answer = await waitFor(() => redisSay(port, 'PING'), { what: 'the session Redis' });
    expect(answer).toBe('-NOAUTH Authentication required.\r\n');
    const password = await readFile(join(dir, 'password'), 'utf8');
    expect(password).toMatch(/^[A-Za-z0-9]{40}$/);
    // Readable by the LMS's user, which is not the redis user, through the shared volume.
    expect((await stat(join(dir, 'password'))).mode & 0o777).toBe(0o644);
    expect(await redisSay(port, `AUTH ${password}`, 'PING')).toBe('+OK\r\n+PONG\r\n');
    // The healthcheck: healthy with the password from the file, in redis-cli's environment.
    const health = /test: \["CMD-SHELL", "(.*)"\]/.exec(service('session-redis'))?.[1] ?? '';
    const check = health
      .replaceAll('\\"', '"')
      .replaceAll('$$', '$')
      .replaceAll('/data/', `${dir}/`)
      .replace('redis-cli ', `redis-cli -p ${port} `);
    expect(spawnSync('sh', ['-c', check]).status).toBe(0);
    // A second start keeps the password (the volume outlives the container).
    await redis.stop();
    const again = spawnManaged('sh', ['-c', text]);
    stops.push(() => again.stop());
    await waitFor(() => redisSay(port, 'PING'), { what: 'the session Redis again' });
    expect(await readFile(join(dir, 'password'), 'utf8')).toBe(password);
  });

  it('hands the seed its passwords in files and the LMS its session Redis password', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'bin'));
    await mkdir(join(dir, 'session-redis'));
    await writeFile(join(dir, 'session-redis', 'password'), 'sessionRedisPassword1');
    // A stand-in for node: records each run's arguments, variables and the --passwords-from files.
    const record = join(dir, 'record');
    await writeFile(
      join(dir, 'bin', 'node'),
      `#!/bin/sh
echo "argv: $*" >> "${record}"
echo "env: XQUEUE_PASSWORD=\${XQUEUE_PASSWORD-unset} SESSION_REDIS_URL=$SESSION_REDIS_URL" >> "${record}"
case " $* " in *" seed "*) echo "Generated passwords, shown this once";; esac
while [ $# -gt 0 ]; do
  if [ "$1" = --passwords-from ]; then for f in "$2"/*; do echo "file: $(basename "$f")=$(cat "$f")" >> "${record}"; done; fi
  shift
done
`,
    );
    await chmod(join(dir, 'bin', 'node'), 0o755);
    const text = script('lms', {
      '/session-redis/': `${dir}/session-redis/`,
      '/data/': `${dir}/`,
      '/secrets/': `${dir}/secrets/`,
    });
    // mktemp's folder for the password files: empty again once the script ran.
    const temporary = join(dir, 'tmp');
    await mkdir(temporary);
    const lms = spawnSync('sh', ['-c', text], {
      env: {
        PATH: `${join(dir, 'bin')}:${process.env.PATH}`,
        TMPDIR: temporary,
        LMS_QUEUES: 'python',
        LMS_SEED_ARGS: '--reset-passwords',
        XQUEUE_PASSWORD: 'svcSecret1',
        LMS_STAFF_PASSWORD: 'staffSecret1',
        STUDENT_PASSWORD: '',
      },
      encoding: 'utf8',
    });
    expect(lms.status).toBe(0);
    const lines = (await readFile(record, 'utf8')).trim().split('\n');
    const argv = lines.filter((line) => line.startsWith('argv: '));
    expect(argv).toEqual([
      expect.stringMatching(/ seed .*--passwords-from \S+ --reset-passwords$/),
      'argv: --import tsx src/cli.ts serve',
    ]);
    for (const line of argv) expect(line).not.toMatch(/Secret1|sessionRedisPassword1/);
    expect(lines.filter((line) => line.startsWith('file: '))).toEqual([
      'file: service=svcSecret1',
      'file: staff=staffSecret1',
    ]);
    const url = 'SESSION_REDIS_URL=redis://:sessionRedisPassword1@session-redis:6379';
    expect(lines.filter((line) => line.startsWith('env: '))).toEqual([
      `env: XQUEUE_PASSWORD=unset ${url}`,
      `env: XQUEUE_PASSWORD=unset ${url}`,
    ]);
    // The seed's output (with generated passwords) in a file of mode 0600, not in the logs.
    expect(lms.stdout).not.toContain('Generated passwords, shown this once');
    expect(await readFile(join(dir, 'seed-output.txt'), 'utf8')).toContain('Generated passwords');
    expect((await stat(join(dir, 'seed-output.txt'))).mode & 0o777).toBe(0o600);
    // The folder of password files is gone once the seed ran.
    expect(await readdir(temporary)).toEqual([]);
  });
});
