import { fail, ok, type Parsed, parseJson } from './protocol.ts';

/**
 * What put_result reads from a grader's reply (form fields `xqueue_header` and `xqueue_body`),
 * as edx-submissions' `XQueueViewSet.validate_grader_reply` reads it.
 */
export interface GraderReply {
  /** May be any integer: ids that name no submission are answered 404, not 400. */
  submission_id: number;
  /** The header's key, or null when it is not a string (upstream compares it as is: no match). */
  submission_key: string | null;
  /**
   * The body's `score` when it is a number >= 0 (or a string of one); null when missing or
   * anything else, where upstream's `set_score` fails and the submission goes to `retry`.
   */
  score: number | null;
  /** Kept for the student view when the grader sent a boolean; upstream does not read it. */
  correct?: boolean;
  /** Kept for the student view when the grader sent a string; upstream stores the raw reply. */
  msg?: string;
}

// What Python's int() takes from a string: optional sign, ASCII digits with single underscores
// between them, surrounding whitespace.
const PYTHON_INT = /^\s*[+-]?\d+(?:_\d+)*\s*$/;
// What Django REST framework's IntegerField takes from a string, widened to decimals (our
// graders report fractions).
const DECIMAL = /^\s*\d+(?:\.\d+)?\s*$/;

function jsonObject(label: string, raw: unknown): Parsed<Record<string, unknown>> {
  if (raw === undefined) return fail(`${label} is missing`);
  const json = parseJson(label, raw);
  if (!json.ok) return json;
  const value = json.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(`${label} must be a JSON object`);
  }
  return ok(value as Record<string, unknown>);
}

function submissionId(value: unknown): number | null {
  if (typeof value === 'number') return Number.isInteger(value) ? value : null;
  if (typeof value === 'string' && PYTHON_INT.test(value)) {
    return Number(value.trim().replaceAll('_', ''));
  }
  return null;
}

function score(value: unknown): number | null {
  const number = typeof value === 'string' && DECIMAL.test(value) ? Number(value) : value;
  return typeof number === 'number' && Number.isFinite(number) && number >= 0 ? number : null;
}

/**
 * Parses put_result's two fields. Refused (so 400 `Incorrect reply format`) exactly where
 * upstream refuses or fails: a field missing or not JSON, a header without `submission_id` or
 * `submission_key`, an id that is not an integer, a body that is not a JSON object. Anything
 * else in the body is read leniently: see {@link GraderReply}.
 *
 * @example
 * parseGraderReply('{"submission_id":"7","submission_key":"k"}', '{"score":1}');
 * // { ok: true, value: { submission_id: 7, submission_key: 'k', score: 1 } }
 */
export function parseGraderReply(header: unknown, body: unknown): Parsed<GraderReply> {
  const head = jsonObject('xqueue_header', header);
  if (!head.ok) return head;
  for (const tag of ['submission_id', 'submission_key']) {
    if (!(tag in head.value)) return fail(`xqueue_header has no ${tag}`);
  }
  const id = submissionId(head.value.submission_id);
  if (id === null) return fail('xqueue_header: submission_id is not an integer');
  const reply = jsonObject('xqueue_body', body);
  if (!reply.ok) return reply;
  const key = head.value.submission_key;
  const { correct, msg } = reply.value;
  return ok({
    submission_id: id,
    submission_key: typeof key === 'string' ? key : null,
    score: score(reply.value.score),
    ...(typeof correct === 'boolean' ? { correct } : {}),
    ...(typeof msg === 'string' ? { msg } : {}),
  });
}
