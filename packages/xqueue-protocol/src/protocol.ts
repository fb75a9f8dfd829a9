import { z } from 'zod';

/** Endpoint paths, trailing slashes included: real clients send them exactly so. */
export const XQUEUE_PATHS = {
  login: '/xqueue/login/',
  logout: '/xqueue/logout/',
  getSubmission: '/xqueue/get_submission/',
  putResult: '/xqueue/put_result/',
  getQueuelen: '/xqueue/get_queuelen/',
  status: '/xqueue/status/',
} as const;

/** The 403 body Django REST framework sends when no session is authenticated. */
export const NOT_AUTHENTICATED_DETAIL = 'Authentication credentials were not provided.';

/**
 * Header on a 403 that tells a client why its session ended (beyond upstream): `evicted`
 * (another login took the slot), `expired`, `logged-out`, `password-change`, `staff` (a staff
 * member ended it) or `user` (its user ended it from another session). The body carries the
 * same value in `session_end.reason`, so clients that only read `detail` keep working.
 */
export const SESSION_END_HEADER = 'X-Session-End-Reason';

/** Header a client may send to name itself for session-policy's instance scope. */
export const CLIENT_INSTANCE_HEADER = 'X-Client-Instance';

export type SessionEndReason =
  | 'evicted'
  | 'expired'
  | 'logged-out'
  | 'password-change'
  | 'staff'
  | 'user';

/** Which login ended an evicted session, and the limit it was enforcing. */
export interface EvictionDetail {
  /** The evicting login's `X-Client-Instance`, or null when it sent none. */
  by_instance: string | null;
  /** The first 8 hex digits of the evicting session's id, as the LMS logs name it. */
  by_session: string;
  /**
   * The pool the evicted session was counted in, right after the eviction: `used` live sessions
   * of `max` allowed; `scope` `account` (all of the account's sessions) or `instance` (those of
   * one client instance).
   */
  quota: { used: number; max: number; scope: 'account' | 'instance' } | null;
}

/**
 * The 403 body: `detail` as upstream, plus the machine-readable reason when one is known and,
 * for an eviction, which login evicted the session and the quota it was enforcing.
 */
export interface NotAuthenticatedBody {
  detail: string;
  session_end?: { reason: SessionEndReason; at: string } & Partial<EvictionDetail>;
}

/** Every xqueue answer: `return_code` 0 for success, 1 for failure with a message. */
export type Envelope<T = unknown> =
  | { return_code: 0; content: T }
  | { return_code: 1; content: string };

/** A success envelope. */
export function success<T>(content: T): Envelope<T> {
  return { return_code: 0, content };
}

/** A failure envelope with a message. */
export function failure(message: string): Envelope<never> {
  return { return_code: 1, content: message };
}

/** An expected "no" is a value: parsers return this instead of throwing. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** A value as a {@link Parsed} success. */
export const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
/** An error message as a {@link Parsed} failure. */
export const fail = (error: string): Parsed<never> => ({ ok: false, error });

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const path = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  return `${path}${issue.message}`;
}

/** Parses a field that must be a JSON string; the error names the field by `label`. */
export function parseJson(label: string, raw: unknown): Parsed<unknown> {
  if (typeof raw !== 'string') return fail(`${label} must be a JSON string`);
  try {
    return ok(JSON.parse(raw));
  } catch {
    return fail(`${label} is not valid JSON`);
  }
}

function parseJsonWith<T>(label: string, raw: unknown, schema: z.ZodType<T>): Parsed<T> {
  const json = parseJson(label, raw);
  if (!json.ok) return json;
  const result = schema.safeParse(json.value);
  return result.success
    ? ok(result.data)
    : fail(`${label} is invalid: ${firstIssue(result.error)}`);
}

const headerSchema = z.object({
  submission_id: z.number().int().positive(),
  submission_key: z.string().min(1).max(128),
  lms_callback_url: z.string().max(2048).optional(),
  lms_key: z.string().max(256).optional(),
  queue_name: z.string().max(128).optional(),
});

/** `xqueue_header`: which submission, and the pull key that proves the puller holds it. */
export type XQueueHeader = z.infer<typeof headerSchema>;

/** Parses the `xqueue_header` JSON string of get_submission and put_result. */
export function parseXQueueHeader(raw: unknown): Parsed<XQueueHeader> {
  return parseJsonWith('xqueue_header', raw, headerSchema);
}

const submissionBodySchema = z.object({
  grader_payload: z.string(),
  student_info: z.string(),
  student_response: z.string(),
});

/**
 * `xqueue_body` as a grader receives it: the problem's grader payload, `student_info` (a JSON
 * string, see {@link StudentInfo}) and the student's answer.
 */
export type SubmissionBody = z.infer<typeof submissionBodySchema>;

/**
 * What `student_info` decodes to, as edx-submissions' get_submission writes it:
 * `submission_time` is unix seconds as a string, `random_seed` is always 1.
 */
export interface StudentInfo {
  anonymous_student_id: string;
  submission_time: string;
  random_seed: number;
}

/**
 * Encodes `student_info` for a submission made at `submittedAtMs`.
 *
 * @example
 * encodeStudentInfo('0f3a…', Date.UTC(2025, 0, 1)); // '{"anonymous_student_id":"0f3a…","submission_time":"1735689600","random_seed":1}'
 */
export function encodeStudentInfo(anonymousStudentId: string, submittedAtMs: number): string {
  const info: StudentInfo = {
    anonymous_student_id: anonymousStudentId,
    submission_time: String(Math.floor(submittedAtMs / 1000)),
    random_seed: 1,
  };
  return JSON.stringify(info);
}

/** Parses the `xqueue_body` JSON string that get_submission serves. */
export function parseSubmissionBody(raw: unknown): Parsed<SubmissionBody> {
  return parseJsonWith('xqueue_body', raw, submissionBodySchema);
}

const gradeResultSchema = z.object({
  correct: z.boolean(),
  score: z.number().finite().min(0),
  msg: z.string().max(100_000),
});

/**
 * The reply this project's graders produce, posted as `xqueue_body` of put_result. The LMS reads
 * replies with `parseGraderReply`, which (as upstream) needs only `score`.
 */
export type GradeResult = z.infer<typeof gradeResultSchema>;

/** Parses a complete {@link GradeResult}: all three fields, typed (stricter than the LMS). */
export function parseGradeResult(raw: unknown): Parsed<GradeResult> {
  return parseJsonWith('xqueue_body', raw, gradeResultSchema);
}

const submissionContentSchema = z.object({
  xqueue_header: z.string(),
  xqueue_body: z.string(),
  xqueue_files: z.string(),
});

/** What get_submission's `content` decodes to: three JSON strings. */
export type SubmissionContent = z.infer<typeof submissionContentSchema>;

/** A pulled submission, fully decoded. */
export interface PulledSubmission {
  header: XQueueHeader;
  body: SubmissionBody;
  files: Record<string, string>;
}

/**
 * Encodes a submission for get_submission's `content`, nesting JSON strings as xqueue does.
 *
 * @example
 * success(encodeSubmission({ header, body, files: {} }));
 */
export function encodeSubmission(submission: PulledSubmission): string {
  // In upstream's key order, whatever order the caller built the body in.
  const { grader_payload, student_info, student_response } = submission.body;
  const content: SubmissionContent = {
    xqueue_header: JSON.stringify(submission.header),
    xqueue_body: JSON.stringify({ grader_payload, student_info, student_response }),
    xqueue_files: JSON.stringify(submission.files),
  };
  return JSON.stringify(content);
}

/** Decodes get_submission's `content` string into header, body and files. */
export function decodeSubmission(raw: unknown): Parsed<PulledSubmission> {
  const content = parseJsonWith('content', raw, submissionContentSchema);
  if (!content.ok) return content;
  const header = parseXQueueHeader(content.value.xqueue_header);
  if (!header.ok) return header;
  const body = parseSubmissionBody(content.value.xqueue_body);
  if (!body.ok) return body;
  const files = parseJsonWith(
    'xqueue_files',
    content.value.xqueue_files,
    z.record(z.string(), z.string()),
  );
  if (!files.ok) return files;
  return ok({ header: header.value, body: body.value, files: files.value });
}

const envelopeSchema = z.union([
  z.object({ return_code: z.literal(0), content: z.unknown() }),
  z.object({ return_code: z.literal(1), content: z.string() }),
]);

/** Parses any xqueue answer body into an envelope. */
export function parseEnvelope(raw: string): Parsed<Envelope> {
  return parseJsonWith('response', raw, envelopeSchema) as Parsed<Envelope>;
}
