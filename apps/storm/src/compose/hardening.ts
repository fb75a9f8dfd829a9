import { run } from './command.ts';
import type { ComposeStack } from './stack.ts';

/** One property of the compose stack's defaults, and whether the running stack has it. */
export interface HardeningCheck {
  name: string;
  ok: boolean;
  /** What was seen; never a secret's value. */
  detail: string;
}

export interface HardeningOptions {
  /** The host port the LMS is published on. */
  lmsPort: number;
  /** The LMS's METRICS_TOKEN. */
  metricsToken: string;
}

/**
 * A probe run by `node -e` in a watcher container: whether HOST:6379 accepts a TCP connection.
 * Prints `reachable` or `unreachable: <why>`.
 */
const tcpProbe = (host: string) =>
  `const s=require('net').connect(6379,${JSON.stringify(host)});s.setTimeout(3000);` +
  `s.on('connect',()=>{console.log('reachable');process.exit(0)});` +
  `s.on('timeout',()=>{console.log('unreachable: timeout');process.exit(0)});` +
  `s.on('error',(e)=>{console.log('unreachable: '+e.code);process.exit(0)})`;

async function loopbackOnly(stack: ComposeStack, lmsPort: number): Promise<HardeningCheck> {
  const name = 'LMS published on 127.0.0.1 only (LMS_BIND unset)';
  const id = (await stack.query(['ps', '-q', 'lms'])).stdout.trim();
  const ports = await run('docker', ['port', id, '8000/tcp']);
  const bindings = ports.stdout.split('\n').filter(Boolean);
  const ok =
    ports.code === 0 &&
    bindings.length > 0 &&
    bindings.every((binding) => binding === `127.0.0.1:${lmsPort}`);
  return { name, ok, detail: `docker port: ${bindings.join(', ') || ports.stderr.trim()}` };
}

async function metricsNeedToken(lmsPort: number, token: string): Promise<HardeningCheck> {
  const url = `http://127.0.0.1:${lmsPort}/metrics`;
  const without = (await fetch(url)).status;
  const withToken = (await fetch(url, { headers: { authorization: `Bearer ${token}` } })).status;
  return {
    name: '/metrics needs METRICS_TOKEN',
    ok: without === 401 && withToken === 200,
    detail: `${without} without it, ${withToken} with it`,
  };
}

async function sessionRedisRefuses(stack: ComposeStack): Promise<HardeningCheck> {
  const ping = await stack.query(['exec', '-T', 'session-redis', 'redis-cli', 'ping']);
  const answer = `${ping.stdout}${ping.stderr}`.trim();
  return {
    name: 'session Redis refuses a client without its password',
    ok: answer.includes('NOAUTH'),
    detail: `redis-cli ping inside it: ${answer}`,
  };
}

async function sessionRedisHidden(stack: ComposeStack): Promise<HardeningCheck> {
  const probe = async (host: string) =>
    (
      await stack.query(['exec', '-T', '--index=1', 'watcher', 'node', '-e', tcpProbe(host)])
    ).stdout.trim();
  // The watchers' own Redis answers the same probe: it does not fail for every host.
  const [sessions, bullmq] = [await probe('session-redis'), await probe('redis')];
  return {
    name: "session Redis out of a watcher's reach",
    ok: sessions.startsWith('unreachable') && bullmq === 'reachable',
    detail: `from watcher 1: session-redis ${sessions}; redis (BullMQ's) ${bullmq}`,
  };
}

/** The passwords listed under each "Generated passwords" line of the seed's output. */
function generatedPasswords(seedOutput: string): string[] {
  const lines = seedOutput.split('\n');
  return lines.flatMap((line, index) => {
    if (!line.startsWith('Generated passwords')) return [];
    const found: string[] = [];
    // `  staff            <password>`, one per account or range, until the next kind of line.
    for (const next of lines.slice(index + 1)) {
      const match = /^ {2}[^\s:]+ +([^\s:]+)$/.exec(next);
      if (!match?.[1]) break;
      found.push(match[1]);
    }
    return found;
  });
}

async function noSecretShown(stack: ComposeStack, token: string): Promise<HardeningCheck> {
  const name = 'no secret in docker-compose logs or on a process command line';
  const read = async (service: string, path: string) =>
    (await stack.query(['exec', '-T', service, 'cat', path])).stdout;
  const seedOutput = await read('lms', '/data/seed-output.txt');
  const secrets: [string, string][] = [
    ['METRICS_TOKEN', token],
    ['the service password', (await read('lms', '/secrets/xqueue-password')).trim()],
    ['the session Redis password', (await read('session-redis', '/data/password')).trim()],
    ...generatedPasswords(seedOutput).map((password): [string, string] => [
      'a generated password',
      password,
    ]),
  ];
  const missing = secrets.filter(([, value]) => value.length < 8).map(([what]) => what);
  if (missing.length > 0)
    return { name, ok: false, detail: `could not read ${missing.join(', ')}` };
  const mode = (
    await stack.query(['exec', '-T', 'lms', 'stat', '-c', '%a', '/data/seed-output.txt'])
  ).stdout.trim();
  const logs = await stack.query(['logs', '--no-color']);
  const top = await stack.query(['top']);
  const shown = secrets
    .filter(([, value]) => `${logs.stdout}${logs.stderr}${top.stdout}`.includes(value))
    .map(([what]) => what);
  const generated = secrets.length - 3;
  return {
    name,
    ok: shown.length === 0 && mode === '600' && logs.code === 0 && top.code === 0,
    detail:
      shown.length > 0
        ? `found ${[...new Set(shown)].join(', ')}`
        : `${secrets.length} secrets looked for (${generated} generated, in /data/seed-output.txt, mode ${mode})`,
  };
}

/**
 * Checks the running stack's hardened defaults: the LMS on loopback, /metrics behind its token,
 * the session Redis behind a password and out of the watchers' network, and no secret in the
 * logs or on a command line. Needs the stack up and healthy, with at least one watcher.
 *
 * @example
 * const failed = (await checkHardening(stack, { lmsPort, metricsToken })).filter((c) => !c.ok);
 */
export async function checkHardening(
  stack: ComposeStack,
  options: HardeningOptions,
): Promise<HardeningCheck[]> {
  return [
    await loopbackOnly(stack, options.lmsPort),
    await metricsNeedToken(options.lmsPort, options.metricsToken),
    await sessionRedisRefuses(stack),
    await sessionRedisHidden(stack),
    await noSecretShown(stack, options.metricsToken),
  ];
}
