import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import type { WatcherEnv } from './env.ts';
import { type HandlerSpec, parseHandler } from './graders.ts';

/** One watched xqueue queue, after env overrides. */
export interface QueueConfig {
  name: string;
  serverUrl: string;
  username: string;
  password: string;
  connections: number;
  handlers: HandlerSpec[];
}

/** Manager settings of upstream's `xqwatcher.json`, in milliseconds. */
export interface ManagerSettings {
  pollIntervalMs: number;
  loginPollIntervalMs: number;
  requestsTimeoutMs: number;
}

export interface WatcherConfig {
  queues: QueueConfig[];
  manager: ManagerSettings;
  /** The config directory used, or null when the environment alone described the queues. */
  configDir: string | null;
}

/** The configuration cannot be used; the message says which file or variable to fix. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Upstream's defaults (`xqueue_watcher/settings.py`), in seconds. */
const MANAGER_DEFAULTS_SECONDS = { POLL_INTERVAL: 1, LOGIN_POLL_INTERVAL: 5, REQUESTS_TIMEOUT: 1 };

const DEFAULT_HANDLER: HandlerSpec = {
  name: 'exact-answer',
  kwargs: { trim: true, case_sensitive: true },
};

const positiveSeconds = z.number().positive('must be a positive number of seconds');

// Loose on purpose: upstream's xqwatcher.json also carries HTTP_BASIC_AUTH, POLL_TIME, ...
const managerSchema = z.looseObject({
  POLL_INTERVAL: positiveSeconds.optional(),
  LOGIN_POLL_INTERVAL: positiveSeconds.optional(),
  REQUESTS_TIMEOUT: positiveSeconds.optional(),
});

// Strict: a misspelt CONNECTIONS would otherwise silently run one connection.
const queueSchema = z.strictObject({
  SERVER: z.url('must be a URL such as http://lms:8000').optional(),
  AUTH: z
    .tuple([z.string().min(1), z.string().min(1)], 'must be ["username", "password"]')
    .optional(),
  CONNECTIONS: z.number().int().min(1).max(100).default(1),
  HANDLERS: z
    .array(
      z.strictObject({ HANDLER: z.string(), KWARGS: z.record(z.string(), z.unknown()).optional() }),
    )
    .min(1, 'needs at least one {"HANDLER": ..., "KWARGS": {...}}')
    .optional(),
});

type RawQueue = z.infer<typeof queueSchema>;

function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  return issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message;
}

async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path}: not valid JSON (${(error as Error).message})`);
  }
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (info) => info.isDirectory(),
    () => false,
  );
}

async function readQueueFiles(dir: string): Promise<Map<string, RawQueue>> {
  const confD = join(dir, 'conf.d');
  if (!(await isDirectory(confD))) {
    throw new ConfigError(
      `${dir}: no conf.d/ directory; put one {"QUEUE": {...}} JSON file per queue there`,
    );
  }
  const files = (await readdir(confD)).filter((file) => file.endsWith('.json')).sort();
  const queues = new Map<string, RawQueue>();
  for (const file of files) {
    const path = join(confD, file);
    const json = await readJson(path);
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new ConfigError(`${path}: expected an object {"QUEUE_NAME": {"SERVER": ..., ...}}`);
    }
    for (const [name, raw] of Object.entries(json)) {
      const parsed = queueSchema.safeParse(raw);
      if (!parsed.success)
        throw new ConfigError(`${path}: queue "${name}": ${describeIssue(parsed.error)}`);
      if (queues.has(name))
        throw new ConfigError(`${path}: queue "${name}" is defined twice in conf.d`);
      queues.set(name, parsed.data);
    }
  }
  return queues;
}

async function readManager(dir: string | null): Promise<z.infer<typeof managerSchema>> {
  if (dir === null) return {};
  const path = join(dir, 'xqwatcher.json');
  const exists = await stat(path).then(
    () => true,
    () => false,
  );
  if (!exists) return {};
  const parsed = managerSchema.safeParse(await readJson(path));
  if (!parsed.success) throw new ConfigError(`${path}: ${describeIssue(parsed.error)}`);
  return parsed.data;
}

function resolveQueue(
  name: string,
  raw: RawQueue | undefined,
  env: WatcherEnv,
  where: string,
): QueueConfig {
  const serverUrl = env.LMS_URL ?? raw?.SERVER;
  const username = env.XQUEUE_USERNAME ?? raw?.AUTH?.[0];
  const password = env.XQUEUE_PASSWORD ?? raw?.AUTH?.[1];
  const missing = [
    serverUrl ? null : 'SERVER (or LMS_URL)',
    username ? null : 'AUTH[0] (or XQUEUE_USERNAME)',
    password ? null : 'AUTH[1] (or XQUEUE_PASSWORD)',
  ].filter((item) => item !== null);
  if (!serverUrl || !username || !password) {
    throw new ConfigError(`${where}: queue "${name}" has no ${missing.join(', ')}`);
  }
  const handlers = (raw?.HANDLERS ?? []).map((entry, index) => {
    const spec = parseHandler(entry.HANDLER, entry.KWARGS);
    if (!spec.ok)
      throw new ConfigError(`${where}: queue "${name}": HANDLERS[${index}]: ${spec.error}`);
    return spec.value;
  });
  return {
    name,
    serverUrl: serverUrl.replace(/\/+$/, ''),
    username,
    password,
    connections: env.WATCHER_CONNECTIONS ?? raw?.CONNECTIONS ?? 1,
    handlers: handlers.length > 0 ? handlers : [DEFAULT_HANDLER],
  };
}

function managerSettings(file: z.infer<typeof managerSchema>, env: WatcherEnv): ManagerSettings {
  const ms = (value: number) => Math.round(value * 1000);
  return {
    pollIntervalMs: ms(
      env.WATCHER_POLL_INTERVAL ?? file.POLL_INTERVAL ?? MANAGER_DEFAULTS_SECONDS.POLL_INTERVAL,
    ),
    loginPollIntervalMs: ms(
      env.WATCHER_LOGIN_POLL_INTERVAL ??
        file.LOGIN_POLL_INTERVAL ??
        MANAGER_DEFAULTS_SECONDS.LOGIN_POLL_INTERVAL,
    ),
    requestsTimeoutMs: ms(
      env.WATCHER_REQUESTS_TIMEOUT ??
        file.REQUESTS_TIMEOUT ??
        MANAGER_DEFAULTS_SECONDS.REQUESTS_TIMEOUT,
    ),
  };
}

/**
 * Loads an xqueue-watcher config directory (`conf.d/*.json`, optional `xqwatcher.json`) and
 * applies the environment overrides; with no directory the environment alone describes the
 * queues. `WATCHER_QUEUES` selects queues (and adds ones conf.d lacks, built from the env).
 *
 * @example
 * const config = await loadConfig(parseEnv(process.env));
 * config.queues[0]; // { name: 'a', serverUrl: 'http://lms:8000', connections: 2, ... }
 */
export async function loadConfig(env: WatcherEnv): Promise<WatcherConfig> {
  const configDir = env.WATCHER_CONFIG_DIR
    ? resolve(env.INIT_CWD ?? process.cwd(), env.WATCHER_CONFIG_DIR)
    : null;
  if (configDir !== null && !(await isDirectory(configDir))) {
    throw new ConfigError(
      `config directory ${configDir} does not exist (from --config-dir or WATCHER_CONFIG_DIR)`,
    );
  }
  const fromFiles = configDir ? await readQueueFiles(configDir) : new Map<string, RawQueue>();
  const names = env.WATCHER_QUEUES ?? [...fromFiles.keys()];
  if (names.length === 0) {
    throw new ConfigError(
      configDir
        ? `${configDir}/conf.d: no queues defined; add a JSON file or set WATCHER_QUEUES`
        : 'no queues: pass --config-dir DIR (or WATCHER_CONFIG_DIR), or set WATCHER_QUEUES with LMS_URL, XQUEUE_USERNAME, XQUEUE_PASSWORD',
    );
  }
  const queues = names.map((name) => {
    const raw = fromFiles.get(name);
    const where = raw ? `${configDir}/conf.d` : 'WATCHER_QUEUES';
    return resolveQueue(name, raw, env, where);
  });
  return { queues, manager: managerSettings(await readManager(configDir), env), configDir };
}
