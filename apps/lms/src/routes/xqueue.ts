import {
  CLIENT_INSTANCE_HEADER,
  encodeSubmission,
  failure,
  parseGraderReply,
  parseSubmissionBody,
  success,
} from '@storm-lab/xqueue-protocol';
import { type Context, Hono } from 'hono';
import { newPullKey } from '../auth/tokens.ts';
import { DatabaseBusyError } from '../db/busy-retry.ts';
import { clientAddress } from '../http/client-address.ts';
import type { LmsEnv, Services } from '../http/context.ts';
import { ensureCsrfCookie, requireSameOrigin, rotateCsrfCookie } from '../http/csrf.ts';
import { readFields } from '../http/fields.ts';
import {
  clearSessionCookie,
  csrfWhenLoggedIn,
  requireUser,
  setSessionCookie,
} from '../http/session.ts';
import { isBusy, StoredDataError } from '../ops/errors.ts';
import type { PutOutcome } from '../queue/submission-queue.ts';
import { XQUEUE_GROUP } from '../users.ts';

const MAX_NAME_LENGTH = 128;
const MAX_INSTANCE_ID_LENGTH = 128;
/** Longer usernames or passwords are refused before any hashing. */
export const MAX_CREDENTIAL_LENGTH = 1024;

/** The 429 message of a throttled login; the same whether or not the account exists. */
export function throttledMessage(retryAfterSeconds: number): string {
  return `Too many failed login attempts, try again in ${retryAfterSeconds} s`;
}

/** The instance id a client names itself with, if it is usable. */
export function clientInstance(c: Context): string | null {
  const value = c.req.header(CLIENT_INSTANCE_HEADER)?.trim();
  return value && value.length <= MAX_INSTANCE_ID_LENGTH ? value : null;
}

/** The last `queue_name`, as Django's `QueryDict.get`; empty or missing is a 400. */
function queueName(c: Context, endpoint: string): { name: string } | { error: Response } {
  const name = c.req.queries('queue_name')?.at(-1);
  if (name === undefined || name === '') {
    return { error: c.json(failure(`'${endpoint}' must provide parameter 'queue_name'`), 400) };
  }
  return { name };
}

function loginRoutes(services: Services) {
  const app = new Hono<LmsEnv>();
  app.get('/login/', (c) => {
    ensureCsrfCookie(c);
    return c.json(success(''));
  });
  // A page on another site must not log a browser in (login CSRF); the anonymous login needs no
  // token (DRF's rule, and non-browser clients send no Origin or Referer to refuse).
  const sameOrigin = requireSameOrigin((c, message) => c.json(failure(message), 403));
  app.post('/login/', sameOrigin, csrfWhenLoggedIn, async (c) => {
    const read = await readFields(c);
    if (!read.ok) return c.json(failure(read.error), 400);
    const { username, password } = read.fields;
    if (!username || !password) return c.json(failure('Insufficient login info'), 400);
    if (username.length > MAX_CREDENTIAL_LENGTH || password.length > MAX_CREDENTIAL_LENGTH) {
      return c.json(failure('Incorrect login credentials'), 401);
    }
    const outcome = await services.login({
      username,
      password,
      path: 'xqueue',
      requestPath: c.req.path,
      instanceId: clientInstance(c),
      replacing: c.get('auth')?.sessionId ?? null,
      address: clientAddress(c, services.trustProxy),
      userAgent: c.req.header('user-agent') ?? null,
    });
    if (!outcome.ok) {
      if (outcome.reason === 'denied') {
        return c.json(failure('Session limit reached for this account'), 403);
      }
      if (outcome.reason === 'throttled') {
        c.header('Retry-After', String(outcome.retryAfterSeconds));
        return c.json(failure(throttledMessage(outcome.retryAfterSeconds)), 429);
      }
      return c.json(failure('Incorrect login credentials'), 401);
    }
    setSessionCookie(c, outcome.token, services.sessionTtlSeconds);
    // Django's login() rotates the token; xqueue-watcher reads the new one from its jar.
    rotateCsrfCookie(c);
    return c.json(success('Logged in'));
  });
  app.post('/logout/', requireUser({ group: XQUEUE_GROUP }), async (c) => {
    const auth = c.get('auth');
    if (auth) await services.store.end(auth.sessionId, 'logged-out');
    clearSessionCookie(c);
    return c.json(success('Goodbye'));
  });
  return app;
}

function queueRoutes(services: Services) {
  const app = new Hono<LmsEnv>();
  // As upstream's IsXQueueUser on every action but login.
  for (const path of ['/get_queuelen/', '/get_submission/', '/put_result/', '/status/']) {
    app.use(path, requireUser({ group: XQUEUE_GROUP }));
  }

  // Not in edx-submissions: the standalone xqueue's endpoint, kept for operators and tests.
  app.get('/get_queuelen/', async (c) => {
    const queue = queueName(c, 'get_queuelen');
    if ('error' in queue) return queue.error;
    if (queue.name.length > MAX_NAME_LENGTH) {
      return c.json(failure(`queue_name must be at most ${MAX_NAME_LENGTH} characters`), 400);
    }
    const length = await services.batch.read(() =>
      services.queue.length(queue.name, services.now()),
    );
    if (length === null) return c.json(failure(`Queue '${queue.name}' not found`));
    return c.json(success(length));
  });

  // As edx-submissions' XQueueViewSet.get_submission: any queue name with nothing servable,
  // known or not, is "empty".
  app.get('/get_submission/', async (c) => {
    const queue = queueName(c, 'get_submission');
    if ('error' in queue) return queue.error;
    const pull = await services.batch.write(() =>
      services.queue.pull(queue.name, services.now(), newPullKey()),
    );
    if (pull.kind === 'empty') return c.json(failure(`Queue '${queue.name}' is empty`));
    const body = parseSubmissionBody(pull.body);
    if (!body.ok) {
      throw new StoredDataError(`submission ${pull.id} has an unreadable body: ${body.error}`);
    }
    const header = { submission_id: pull.id, submission_key: pull.key };
    return c.json(success(encodeSubmission({ header, body: body.value, files: {} })));
  });

  app.post('/put_result/', (c) => putResult(c, services));

  // As edx-submissions' XQueueViewSet.status, but the body is the JSON envelope: upstream hands
  // the dict to a plain HttpResponse, which sends its keys as text ("return_codecontent").
  app.post('/status/', (c) => c.json(success('OK')));
  return app;
}

const CONCURRENT_UPDATE = 'Submission is currently being processed';

/** As edx-submissions' XQueueViewSet.put_result, except that a repeat is a no-op (200). */
async function putResult(c: Context<LmsEnv>, services: Services): Promise<Response> {
  const read = await readFields(c);
  const reply = read.ok
    ? parseGraderReply(read.fields.xqueue_header, read.fields.xqueue_body)
    : read;
  if (!reply.ok) {
    // Upstream logs the reason and answers only the fixed text.
    services.logger.warn({ reason: reply.error }, 'put_result: incorrect reply format');
    return c.json(failure('Incorrect reply format'), 400);
  }
  const { submission_id: id, submission_key: key, ...result } = reply.value;
  const input = { id, key, result, now: services.now() };
  let outcome: PutOutcome;
  try {
    outcome = await services.batch.write(() => services.queue.putResult(input));
  } catch (error) {
    // Another process holds the write lock past the batcher's deadline: upstream's nowait lock
    // error. Nothing was written; the grader sends the result again.
    if (isBusy(error) || error instanceof DatabaseBusyError) {
      return c.json(failure(CONCURRENT_UPDATE), 409);
    }
    throw error;
  }
  switch (outcome.kind) {
    case 'unknown':
      return c.json(failure('Submission does not exist'), 404);
    case 'stale-key':
      return c.json(failure('Incorrect key for submission'), 403);
    case 'conflict':
      return c.json(failure(CONCURRENT_UPDATE), 409);
    case 'repeat':
      return c.json(success(''));
    case 'unscored':
      // Upstream's set_score fails on such a score; it answers success and retries the grading.
      services.logger.warn({ id, state: outcome.state }, 'put_result: no usable score');
      return c.json(success(''));
    case 'accepted':
      services.metrics.submissionsGraded.inc({ queue: outcome.queueName });
      services.metrics.gradingLatency.observe(outcome.latencyMs / 1000);
      services.metrics.live.count('graded');
      services.metrics.live.observeLatency(outcome.latencyMs / 1000);
      return c.json(success(''));
  }
}

/**
 * The xqueue API under `/xqueue/`, as real xqueue-watcher clients expect it (trailing slashes,
 * `{return_code, content}` envelopes, DRF's 403 body when not logged in).
 *
 * @example
 * app.route('/xqueue', xqueueRoutes(services));
 */
export function xqueueRoutes(services: Services) {
  const app = new Hono<LmsEnv>();
  app.route('/', loginRoutes(services));
  app.route('/', queueRoutes(services));
  return app;
}
