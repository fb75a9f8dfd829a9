import { numberFlag, parseFlags, UsageError } from '@storm-lab/cli-kit';

export const HELP = `pnpm probe: is this LMS storming with this account, and would the exemption cure it?

Opens K connections as one account, each behaving as xqueue-watcher's current release (the
same login handshake, REQUESTS_TIMEOUT on both login requests, one re-login on 301/302/401/403,
a login timeout at the start ends the connection), polls get_submission on a random queue
name no course has (upstream answers "Queue '...' is empty" for any name) and never posts a
result. If a submission ever comes back it stops at once and says so.

Each connection is one more session of the account: with the flag on and no exemption, the
probe's logins evict the live fleet's sessions too, as one more replica would. Probe a staging
LMS, or accept that cost for the probe's duration.

Usage: pnpm probe --lms-url URL --username NAME [options]

Options:
  --lms-url URL            the LMS (as xqueue-watcher's SERVER, e.g. https://lms.example.com)
  --username NAME          the account the graders share
  --connections K          connections to open (default 4; at least 2 to see eviction)
  --duration SECONDS       how long to probe (default 30)
  --request-timeout SEC    upstream's REQUESTS_TIMEOUT (default 1)
  --poll-interval SEC      upstream's POLL_INTERVAL (default 1)
  --login-poll-interval S  upstream's LOGIN_POLL_INTERVAL (default 5)
  --yes                    required to probe a host outside loopback; the probe then sends at
                           most one request per connection per poll interval
  --json                   print one JSON object (verdict, logins, forbidden, connections,
                           suggestion, ...) instead of the summary
  -h, --help               this text

The password is read from PROBE_PASSWORD, else asked for on the terminal; never give it on
the command line.

Verdicts: STORM (more than two logins per connection, or a 403 per connection: sessions keep
being ended), HEALTHY (connections stay logged in), INCONCLUSIVE (fewer than two connections got
to poll: the others died on a login timeout, as upstream's threads do).

Exit status: 0 HEALTHY, 1 STORM, 2 bad usage or the login was refused, 3 a submission came
back (the probe stopped without posting anything), 4 INCONCLUSIVE.`;

export interface CliOptions {
  lmsUrl: URL;
  username: string;
  connections: number;
  durationMs: number;
  requestTimeoutMs: number;
  pollIntervalMs: number;
  loginPollIntervalMs: number;
  yes: boolean;
  json: boolean;
}

const FLAGS = {
  'lms-url': { type: 'string' },
  username: { type: 'string' },
  connections: { type: 'string' },
  duration: { type: 'string' },
  'request-timeout': { type: 'string' },
  'poll-interval': { type: 'string' },
  'login-poll-interval': { type: 'string' },
  yes: { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Every duration flag: a millisecond (each is counted in whole milliseconds) to an hour. */
const SECONDS = { min: 0.001, max: 3600, unit: 'seconds' };

/** Parses the command line; throws UsageError with a message for the user. */
export function parseCli(argv: readonly string[]): CliOptions | 'help' {
  if (argv.some((arg) => arg === '--password' || arg.startsWith('--password='))) {
    throw new UsageError(
      '--password: a password on the command line ends up in shell history and process lists; set PROBE_PASSWORD or answer the prompt',
    );
  }
  const { values } = parseFlags(argv, FLAGS);
  if (values.help) return 'help';
  if (!values['lms-url']) throw new UsageError('--lms-url is required');
  if (!values.username) throw new UsageError('--username is required');
  let lmsUrl: URL;
  try {
    lmsUrl = new URL(values['lms-url']);
  } catch {
    throw new UsageError(`--lms-url: not a URL: "${values['lms-url']}"`);
  }
  if (lmsUrl.protocol !== 'http:' && lmsUrl.protocol !== 'https:') {
    throw new UsageError(`--lms-url: expected http:// or https://, got "${lmsUrl.protocol}"`);
  }
  const seconds = (name: string, raw: string | undefined, fallback: number) =>
    Math.round(numberFlag(name, raw, fallback, SECONDS) * 1000);
  const connections = numberFlag('connections', values.connections, 4, {
    min: 1,
    max: 64,
    integer: true,
  });
  const durationMs = seconds('duration', values.duration, 30);
  return {
    lmsUrl,
    username: values.username,
    connections,
    durationMs,
    requestTimeoutMs: seconds('request-timeout', values['request-timeout'], 1),
    pollIntervalMs: seconds('poll-interval', values['poll-interval'], 1),
    loginPollIntervalMs: seconds('login-poll-interval', values['login-poll-interval'], 5),
    yes: values.yes ?? false,
    json: values.json ?? false,
  };
}

/** True for localhost, 127.0.0.0/8 and ::1: the only targets probed without `--yes`. */
export function isLoopback(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}
