import { join, resolve } from 'node:path';
import {
  type CLIENT_CLASSES,
  ConfigError,
  type ManagerFile,
  type QueueEntry,
  readConfigDir,
  type Server,
} from './config-files.ts';
import type { WatcherEnv } from './env.ts';
import { type HandlerSpec, parseHandler } from './graders.ts';

export { ConfigError };

/** Upstream's client classes (`CLASS`). Both run the same in-process client here. */
export type ClientClass = (typeof CLIENT_CLASSES)[number];

/** One conf.d entry (or one `WATCHER_QUEUES` name): `connections` clients, after env overrides. */
export interface QueueConfig {
  /** The conf.d key. */
  name: string;
  /** `NAME_OVERRIDE || name`: the `queue_name` sent to the LMS. */
  sentName: string;
  /** No trailing slash. */
  serverUrl: string;
  username: string;
  password: string;
  connections: number;
  /** Accepted for compatibility; threads and processes behave the same here. */
  clientClass: ClientClass;
  handlers: HandlerSpec[];
  /** The file the entry came from, or 'WATCHER_QUEUES'. */
  source: string;
}

/** Manager settings of upstream's `xqwatcher.json` and `XQWATCHER_*`, in milliseconds. */
export interface ManagerSettings {
  /** `POLL_INTERVAL`: sleep after an empty or failed poll. */
  pollIntervalMs: number;
  /** `LOGIN_POLL_INTERVAL`: wait between failed first logins. */
  loginPollIntervalMs: number;
  /** `REQUESTS_TIMEOUT`: per HTTP request, logins included. */
  requestsTimeoutMs: number;
  /** `POLL_TIME`: how often upstream's Manager checks that every client is alive. */
  pollTimeMs: number;
  httpBasicAuth: { username: string; password: string } | null;
  /** Parsed; upstream's Manager never passes it to its clients. */
  followClientRedirects: boolean;
  /** `XQWATCHER_VERIFY_TLS` (no file key upstream either), default true. */
  verifyTls: boolean;
}

export interface WatcherConfig {
  /** One entry per conf.d occurrence: the same queue in two files is two entries. */
  queues: QueueConfig[];
  manager: ManagerSettings;
  /** The config directory used, or null when the environment alone described the queues. */
  configDir: string | null;
  /** What was accepted but is not honoured (Python graders, CODEJAIL, logging.json, ...). */
  warnings: string[];
}

/** Upstream's defaults (`xqueue_watcher/settings.py`), in seconds. */
const MANAGER_DEFAULTS_SECONDS = {
  POLL_TIME: 10,
  REQUESTS_TIMEOUT: 1,
  POLL_INTERVAL: 1,
  LOGIN_POLL_INTERVAL: 5,
};

/** The handler of a queue that names none, unless `WATCHER_DEFAULT_HANDLER` says otherwise. */
const DEFAULT_HANDLER: HandlerSpec = {
  name: 'exact-answer',
  kwargs: { trim: true, case_sensitive: true },
};

interface ResolveContext {
  env: WatcherEnv;
  servers: Map<string, Server>;
  serversPath: string;
  warnings: Set<string>;
  /** Python HANDLER paths already warned about: one warning per path. */
  standIns: Set<string>;
}

// as xqueue-watcher's Manager.client_from_config: SERVER_REF names a server of xqueue_servers.json.
function serverOf(entry: QueueEntry, ctx: ResolveContext) {
  const ref = entry.raw?.SERVER_REF;
  if (ref == null) return { url: entry.raw?.SERVER, auth: entry.raw?.AUTH };
  const server = ctx.servers.get(ref);
  if (!server) {
    const known = [...ctx.servers.keys()].map((name) => `"${name}"`).join(', ');
    throw new ConfigError(
      `${entry.source}: queue "${entry.name}": unknown SERVER_REF "${ref}"; known servers in ` +
        `${ctx.serversPath}: ${known || 'none (the file is missing or empty)'}`,
    );
  }
  return { url: server.SERVER, auth: server.AUTH };
}

function handlersOf(entry: QueueEntry, ctx: ResolveContext): HandlerSpec[] {
  const where = `${entry.source}: queue "${entry.name}"`;
  // No HANDLERS key: the default handler (beyond upstream, whose client then has none).
  if (entry.raw?.HANDLERS === undefined)
    return [ctx.env.WATCHER_DEFAULT_HANDLER ?? DEFAULT_HANDLER];
  return entry.raw.HANDLERS.map((raw, index) => {
    const spec = parseHandler(raw.HANDLER, raw.KWARGS, {
      pythonHandler: ctx.env.WATCHER_PYTHON_HANDLER,
    });
    if (!spec.ok) throw new ConfigError(`${where}: HANDLERS[${index}]: ${spec.error}`);
    if (spec.value.standInFor && !ctx.standIns.has(raw.HANDLER)) {
      ctx.standIns.add(raw.HANDLER);
      ctx.warnings.add(
        `${where}: HANDLER "${raw.HANDLER}" is a Python grader; the ${spec.value.name} mock ` +
          'stands in for it here and wherever else it appears (WATCHER_PYTHON_HANDLER); its ' +
          'KWARGS are kept for display, not used',
      );
    }
    if (!raw.CODEJAIL || Object.keys(raw.CODEJAIL).length === 0) return spec.value;
    ctx.warnings.add(
      `${where}: HANDLERS[${index}]: CODEJAIL is recorded but not applied (the mock graders run no code)`,
    );
    return { ...spec.value, codejail: raw.CODEJAIL };
  });
}

function resolveQueue(entry: QueueEntry, ctx: ResolveContext): QueueConfig {
  const { env } = ctx;
  const server = serverOf(entry, ctx);
  const url = env.LMS_URL ?? server.url;
  const username = env.XQUEUE_USERNAME ?? server.auth?.[0];
  const password = env.XQUEUE_PASSWORD ?? server.auth?.[1];
  if (!url || !username || !password) {
    const missing = [
      url ? null : 'SERVER (or LMS_URL)',
      username ? null : 'AUTH[0] (or XQUEUE_USERNAME)',
      password ? null : 'AUTH[1] (or XQUEUE_PASSWORD)',
    ].filter((item) => item !== null);
    throw new ConfigError(`${entry.source}: queue "${entry.name}" has no ${missing.join(', ')}`);
  }
  return {
    name: entry.name,
    // `NAME_OVERRIDE or queue_name`, as upstream: an empty override means the key.
    sentName: entry.raw?.NAME_OVERRIDE || entry.name,
    serverUrl: url.replace(/\/+$/, ''),
    username,
    password,
    connections: env.WATCHER_CONNECTIONS ?? entry.raw?.CONNECTIONS ?? 1,
    clientClass: entry.raw?.CLASS ?? 'XQueueClientThread',
    handlers: handlersOf(entry, ctx),
    source: entry.source,
  };
}

// Upstream documents XQWATCHER_* as overriding xqwatcher.json (docs/operators.md), but its Manager
// reads only the file (env_settings.get_manager_config_from_env is not wired in); we do what the
// docs say.
function managerSettings(file: ManagerFile, env: WatcherEnv): ManagerSettings {
  const ms = (seconds: number) => Math.max(1, Math.round(seconds * 1000));
  const basic = file.HTTP_BASIC_AUTH;
  return {
    pollIntervalMs: ms(
      env.XQWATCHER_POLL_INTERVAL ?? file.POLL_INTERVAL ?? MANAGER_DEFAULTS_SECONDS.POLL_INTERVAL,
    ),
    loginPollIntervalMs: ms(
      env.XQWATCHER_LOGIN_POLL_INTERVAL ??
        file.LOGIN_POLL_INTERVAL ??
        MANAGER_DEFAULTS_SECONDS.LOGIN_POLL_INTERVAL,
    ),
    requestsTimeoutMs: ms(
      env.XQWATCHER_REQUESTS_TIMEOUT ??
        file.REQUESTS_TIMEOUT ??
        MANAGER_DEFAULTS_SECONDS.REQUESTS_TIMEOUT,
    ),
    pollTimeMs: ms(env.XQWATCHER_POLL_TIME ?? file.POLL_TIME ?? MANAGER_DEFAULTS_SECONDS.POLL_TIME),
    httpBasicAuth:
      env.XQWATCHER_HTTP_BASIC_AUTH ?? (basic ? { username: basic[0], password: basic[1] } : null),
    followClientRedirects:
      env.XQWATCHER_FOLLOW_CLIENT_REDIRECTS ?? file.FOLLOW_CLIENT_REDIRECTS ?? false,
    verifyTls: env.XQWATCHER_VERIFY_TLS,
  };
}

/**
 * Loads an xqueue-watcher config directory (`conf.d/*.json`, optional `xqwatcher.json`,
 * `xqueue_servers.json`) and applies the environment overrides; with no directory the
 * environment alone describes the queues. `WATCHER_QUEUES` selects conf.d keys (and adds ones
 * conf.d lacks, built from the env). A key in two files, as upstream's Manager.configure adds
 * clients per occurrence, gives two entries.
 *
 * @example
 * const config = await loadConfig(parseEnv(process.env));
 * config.queues[0]; // { name: 'a', sentName: 'a', serverUrl: 'http://lms:8000', connections: 2, ... }
 */
export async function loadConfig(env: WatcherEnv): Promise<WatcherConfig> {
  const configDir = env.WATCHER_CONFIG_DIR
    ? resolve(env.INIT_CWD ?? process.cwd(), env.WATCHER_CONFIG_DIR)
    : null;
  const warnings = new Set<string>();
  const dir = configDir
    ? await readConfigDir(configDir, warnings)
    : { file: {}, servers: new Map<string, Server>(), entries: [] };
  const names = env.WATCHER_QUEUES ?? dir.entries.map((entry) => entry.name);
  if (names.length === 0) {
    throw new ConfigError(
      configDir
        ? `${configDir}/conf.d: no queues defined; add a JSON file or set WATCHER_QUEUES`
        : 'no queues: pass --config-dir DIR (or WATCHER_CONFIG_DIR), or set WATCHER_QUEUES with LMS_URL, XQUEUE_USERNAME, XQUEUE_PASSWORD',
    );
  }
  // Without WATCHER_QUEUES every entry, in file order, as upstream creates its clients.
  const selected = !env.WATCHER_QUEUES
    ? dir.entries
    : env.WATCHER_QUEUES.flatMap((name): QueueEntry[] => {
        const found = dir.entries.filter((entry) => entry.name === name);
        return found.length > 0 ? found : [{ name, raw: undefined, source: 'WATCHER_QUEUES' }];
      });
  const serversPath = configDir ? join(configDir, 'xqueue_servers.json') : 'xqueue_servers.json';
  const ctx = { env, servers: dir.servers, serversPath, warnings, standIns: new Set<string>() };
  const queues = selected.map((entry) => resolveQueue(entry, ctx));
  // as upstream's Manager.configure: CONNECTIONS 0 starts no client for that entry.
  for (const queue of queues.filter((q) => q.connections === 0)) {
    warnings.add(`${queue.source}: queue "${queue.name}" has CONNECTIONS 0: no client polls it`);
  }
  // as upstream's Manager.client_from_config: `"HANDLERS": []` makes clients with no handler,
  // whose process_one pulls, answers nothing (`all([])` is true) and pulls again at once.
  for (const queue of queues.filter((q) => q.connections > 0 && q.handlers.length === 0)) {
    warnings.add(
      `${queue.source}: queue "${queue.name}" has "HANDLERS": [], as upstream allows: its ` +
        `${queue.connections} connection${queue.connections === 1 ? '' : 's'} pull submissions ` +
        "and never answer them (each waits out the LMS's lock before another client gets it); " +
        'list its HANDLERS, or raise CONNECTIONS of the entry that has them',
    );
  }
  if (queues.every((queue) => queue.connections === 0)) {
    throw new ConfigError('every queue has CONNECTIONS 0: no client would poll the LMS');
  }
  if (!env.XQWATCHER_VERIFY_TLS) {
    warnings.add(
      'XQWATCHER_VERIFY_TLS=false: TLS certificates are not verified; never in production',
    );
  }
  return {
    queues: queues.filter((queue) => queue.connections > 0),
    manager: managerSettings(dir.file, env),
    configDir,
    warnings: [...warnings],
  };
}

const REDACTED = '<redacted>';
// Grader KWARGS and CODEJAIL blocks are free-form: hide anything that looks like a credential.
const SECRET_KEY = /pass|secret|token|credential|auth/i;

function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [
      key,
      SECRET_KEY.test(key) ? REDACTED : redactSecrets(inner),
    ]),
  );
}

/**
 * The configuration as an operator reads it (`pnpm watcher config`): one group of clients per
 * entry, stand-ins named, every password redacted.
 *
 * @example
 * console.log(JSON.stringify(describeConfig(await loadConfig(env)), null, 2));
 */
export function describeConfig(config: WatcherConfig) {
  const { httpBasicAuth } = config.manager;
  return {
    configDir: config.configDir,
    totalConnections: config.queues.reduce((sum, queue) => sum + queue.connections, 0),
    clientGroups: config.queues.map((queue) => ({
      queueName: queue.sentName,
      confKey: queue.name,
      serverUrl: queue.serverUrl,
      username: queue.username,
      password: REDACTED,
      connections: queue.connections,
      clientClass: queue.clientClass,
      handlers: queue.handlers.map((handler) => redactSecrets(handler)),
      source: queue.source,
    })),
    manager: {
      ...config.manager,
      httpBasicAuth: httpBasicAuth && { username: httpBasicAuth.username, password: REDACTED },
    },
    warnings: config.warnings,
  };
}
