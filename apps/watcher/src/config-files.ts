import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/** The configuration cannot be used; the message says which file or variable to fix. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Upstream's client classes (`CLASS`). */
export const CLIENT_CLASSES = ['XQueueClientThread', 'XQueueClientProcess'] as const;

const positiveSeconds = z.number('must be a number of seconds').positive('must be positive');
const serverUrl = z.url('must be a URL such as http://lms:8000');
const auth = z.tuple([z.string().min(1), z.string()], 'must be ["username", "password"]');
const jsonObject = z.record(z.string(), z.unknown(), 'must be an object');

// Only the known keys are read, as upstream's get_manager_config_values does.
const managerSchema = z.object(
  {
    HTTP_BASIC_AUTH: auth.nullable().optional(),
    POLL_TIME: positiveSeconds.optional(),
    REQUESTS_TIMEOUT: positiveSeconds.optional(),
    POLL_INTERVAL: positiveSeconds.optional(),
    LOGIN_POLL_INTERVAL: positiveSeconds.optional(),
    FOLLOW_CLIENT_REDIRECTS: z.boolean('must be true or false').optional(),
  },
  'expected an object such as {"POLL_INTERVAL": 1}',
);

/** A zod error option that says "is required" for a missing key, else `message`. */
const requiredOr = (message: string) => ({
  error: (issue: { input?: unknown }) => (issue.input === undefined ? 'is required' : message),
});

// Loose: upstream's get_xqueue_servers checks only that SERVER and AUTH are there.
const serverSchema = z.looseObject({
  SERVER: z.url(requiredOr('must be a URL such as http://lms:8000')),
  AUTH: z.tuple([z.string().min(1), z.string()], requiredOr('must be ["username", "password"]')),
});

const WHOLE_0_TO_100 = 'must be a whole number from 0 to 100';

// Strict: a misspelt CONNECTIONS would otherwise silently run one connection.
const queueSchema = z.strictObject({
  SERVER: serverUrl.optional(),
  SERVER_REF: z.string().min(1).nullable().optional(),
  AUTH: auth.optional(),
  CONNECTIONS: z
    .number(WHOLE_0_TO_100)
    .int(WHOLE_0_TO_100)
    .min(0, WHOLE_0_TO_100)
    .max(100, WHOLE_0_TO_100)
    .default(1),
  CLASS: z
    .enum(CLIENT_CLASSES, `must be ${CLIENT_CLASSES.join(' or ')}`)
    .default('XQueueClientThread'),
  NAME_OVERRIDE: z.string().nullable().optional(),
  HANDLERS: z
    .array(
      z.strictObject({
        HANDLER: z.string().min(1),
        KWARGS: jsonObject.nullable().optional(),
        CODEJAIL: jsonObject.nullable().optional(),
      }),
    )
    // May be empty, as upstream's Manager.client_from_config allows (loadConfig warns).
    .optional(),
});

type RawQueue = z.infer<typeof queueSchema>;

/** A server of xqueue_servers.json. */
export type Server = z.infer<typeof serverSchema>;

/** xqwatcher.json's known keys, in seconds. */
export type ManagerFile = z.infer<typeof managerSchema>;

/** A conf.d occurrence of a queue, before env overrides. */
export interface QueueEntry {
  name: string;
  raw: RawQueue | undefined;
  source: string;
}

function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  return issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function exists(path: string, kind: 'file' | 'directory'): Promise<boolean> {
  return stat(path).then(
    (info) => (kind === 'file' ? info.isFile() : info.isDirectory()),
    () => false,
  );
}

/** The file's JSON object, or undefined when the file is absent. */
async function readJsonObject(path: string, shape: string): Promise<object | undefined> {
  if (!(await exists(path, 'file'))) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`${path}: not valid JSON (${(error as Error).message})`);
  }
  if (!isObject(json)) throw new ConfigError(`${path}: expected an object ${shape}`);
  return json;
}

async function readManagerFile(dir: string, warnings: Set<string>) {
  const path = join(dir, 'xqwatcher.json');
  const json = await readJsonObject(path, '{"POLL_INTERVAL": 1, ...}');
  if (json === undefined) return {};
  const unknown = Object.keys(json).filter((key) => !Object.hasOwn(managerSchema.shape, key));
  if (unknown.length > 0) {
    warnings.add(`${path}: ignored unknown key(s) ${unknown.join(', ')}, as upstream does`);
  }
  const parsed = managerSchema.safeParse(json);
  if (!parsed.success) throw new ConfigError(`${path}: ${describeIssue(parsed.error)}`);
  return parsed.data;
}

// as xqueue-watcher's settings.get_xqueue_servers: SERVER and AUTH are required per server.
async function readServers(dir: string): Promise<Map<string, Server>> {
  const path = join(dir, 'xqueue_servers.json');
  const json = await readJsonObject(path, '{"NAME": {"SERVER": ..., "AUTH": [...]}}');
  const servers = new Map<string, Server>();
  for (const [name, raw] of Object.entries(json ?? {})) {
    const parsed = serverSchema.safeParse(raw);
    if (!parsed.success)
      throw new ConfigError(`${path}: server "${name}": ${describeIssue(parsed.error)}`);
    servers.set(name, parsed.data);
  }
  return servers;
}

// as xqueue-watcher's Manager.configure_from_directory: conf.d/*.json in sorted order.
async function readQueueEntries(dir: string): Promise<QueueEntry[]> {
  const confD = join(dir, 'conf.d');
  if (!(await exists(confD, 'directory'))) {
    throw new ConfigError(
      `${dir}: no conf.d/ directory; put one {"QUEUE": {...}} JSON file per queue there`,
    );
  }
  const files = (await readdir(confD)).filter((file) => file.endsWith('.json')).sort();
  const entries: QueueEntry[] = [];
  for (const file of files) {
    const path = join(confD, file);
    const json = (await readJsonObject(path, '{"QUEUE_NAME": {"SERVER": ..., ...}}')) ?? {};
    for (const [name, raw] of Object.entries(json)) {
      // Checked on the raw keys, as upstream's `in` test is, before any field is validated.
      if (isObject(raw) && raw.SERVER_REF != null && ('SERVER' in raw || 'AUTH' in raw)) {
        throw new ConfigError(
          `${path}: queue "${name}": SERVER_REF cannot be used with SERVER or AUTH; remove them`,
        );
      }
      const parsed = queueSchema.safeParse(raw);
      if (!parsed.success)
        throw new ConfigError(`${path}: queue "${name}": ${describeIssue(parsed.error)}`);
      entries.push({ name, raw: parsed.data, source: path });
    }
  }
  return entries;
}

/**
 * Reads an xqueue-watcher config directory as upstream's Manager.configure_from_directory does,
 * adding to `warnings` what is accepted but not honoured.
 *
 * @example
 * const { file, servers, entries } = await readConfigDir('/etc/xqwatcher', new Set());
 */
export async function readConfigDir(
  dir: string,
  warnings: Set<string>,
): Promise<{ file: ManagerFile; servers: Map<string, Server>; entries: QueueEntry[] }> {
  if (!(await exists(dir, 'directory'))) {
    throw new ConfigError(
      `config directory ${dir} does not exist (from --config-dir or WATCHER_CONFIG_DIR)`,
    );
  }
  const file = await readManagerFile(dir, warnings);
  const servers = await readServers(dir);
  if (await exists(join(dir, 'logging.json'), 'file')) {
    warnings.add(
      `${join(dir, 'logging.json')} is ignored: this watcher logs JSON lines to stdout at ` +
        'LOG_LEVEL (or XQWATCHER_LOG_LEVEL)',
    );
  }
  return { file, servers, entries: await readQueueEntries(dir) };
}
