import type { GradeResult, Parsed, PulledSubmission } from '@storm-lab/xqueue-protocol';
import { z } from 'zod';

/** Grades one decoded submission. Throws `MalformedSubmissionError` or `TransientGraderError`. */
export type Grader = (submission: PulledSubmission, signal?: AbortSignal) => Promise<GradeResult>;

/** What graders need from the outside world, so tests control time and chance. */
export interface GraderDeps {
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Uniform in [0, 1). */
  random(): number;
}

/** The submission cannot be graded as sent: it gets a failure result and is never retried. */
export class MalformedSubmissionError extends Error {
  override name = 'MalformedSubmissionError';
}

/** The grader failed for a reason that may pass: the job is retried with backoff. */
export class TransientGraderError extends Error {
  override name = 'TransientGraderError';
}

const exactKwargs = z.strictObject({
  case_sensitive: z.boolean().default(true),
  trim: z.boolean().default(true),
});

const slowFlakyKwargs = z.strictObject({
  ...exactKwargs.shape,
  latency_ms: z.number().min(0).max(600_000).default(0),
  jitter_ms: z.number().min(0).max(600_000).default(0),
  failure_rate: z.number().min(0).max(1).default(0),
});

const testReportKwargs = z.strictObject({ case_sensitive: z.boolean().default(true) });

const HANDLER_KWARGS = {
  'exact-answer': exactKwargs,
  'slow-flaky': slowFlakyKwargs,
  'test-report': testReportKwargs,
} as const;

/** The `HANDLER` names this watcher knows. */
export const HANDLER_NAMES = Object.keys(HANDLER_KWARGS) as HandlerName[];

export type HandlerName = keyof typeof HANDLER_KWARGS;

/** Where a handler came from, beyond the mock grader that runs. */
interface HandlerOrigin {
  /** The Python `HANDLER` path (e.g. `xqueue_watcher.containergrader.ContainerGrader`) this mock stands in for. */
  standInFor?: string;
  /** That Python handler's `KWARGS`, kept for display only: the mock does not read them. */
  pythonKwargs?: Record<string, unknown>;
  /** The entry's `CODEJAIL` block, recorded but not applied: the mock graders run no student code. */
  codejail?: unknown;
}

/** A validated `{"HANDLER", "KWARGS", "CODEJAIL"}` entry. */
export type HandlerSpec = (
  | { name: 'exact-answer'; kwargs: z.infer<typeof exactKwargs> }
  | { name: 'slow-flaky'; kwargs: z.infer<typeof slowFlakyKwargs> }
  | { name: 'test-report'; kwargs: z.infer<typeof testReportKwargs> }
) &
  HandlerOrigin;

export interface ParseHandlerOptions {
  /** The mock grader that stands in for a Python `HANDLER` path (`WATCHER_PYTHON_HANDLER`). */
  pythonHandler?: HandlerName;
}

// A dotted module path with a final attribute, as xqueue-watcher's Manager.client_from_config
// splits it with rsplit('.', 1) and imports the module. Our own names have a '-' and no '.'.
const PYTHON_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$/;

/** True when `HANDLER` names a Python grader (`module.Class`) rather than one of our mocks. */
export function isPythonHandlerPath(name: string): boolean {
  return PYTHON_PATH.test(name);
}

function parseMockHandler(name: HandlerName, kwargs: unknown): Parsed<HandlerSpec> {
  const result = HANDLER_KWARGS[name].safeParse(kwargs ?? {});
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue && issue.path.length > 0 ? `KWARGS.${issue.path.join('.')}: ` : 'KWARGS: ';
    return { ok: false, error: `HANDLER "${name}": ${where}${issue?.message ?? 'invalid'}` };
  }
  return { ok: true, value: { name, kwargs: result.data } as HandlerSpec };
}

/**
 * Validates a handler name and its KWARGS; the error lists the accepted names or the bad field.
 * A Python path is stood in by `options.pythonHandler` (default `exact-answer`) with that mock's
 * default KWARGS; the Python KWARGS are kept in `pythonKwargs` and not validated.
 *
 * @example
 * parseHandler('slow-flaky', { latency_ms: 50, failure_rate: 0.1 });
 * parseHandler('my_graders.Grader', { grader_root: '/graders' }); // exact-answer, standInFor set
 */
export function parseHandler(
  name: string,
  kwargs: unknown,
  options: ParseHandlerOptions = {},
): Parsed<HandlerSpec> {
  if (Object.hasOwn(HANDLER_KWARGS, name)) return parseMockHandler(name as HandlerName, kwargs);
  if (isPythonHandlerPath(name)) {
    const mock = parseMockHandler(options.pythonHandler ?? 'exact-answer', {});
    if (!mock.ok) return mock;
    const pythonKwargs =
      typeof kwargs === 'object' && kwargs !== null ? (kwargs as Record<string, unknown>) : {};
    return { ok: true, value: { ...mock.value, standInFor: name, pythonKwargs } };
  }
  return {
    ok: false,
    error:
      `unknown HANDLER "${name}"; accepted: ${HANDLER_NAMES.join(', ')}, ` +
      'or a dotted Python path such as my_graders.Grader (stood in by WATCHER_PYTHON_HANDLER)',
  };
}

const payloadSchema = z.object({ answer: z.string() });

/** The expected answer carried in the problem's grader payload, `{"answer": "..."}`. */
export function expectedAnswer(submission: PulledSubmission): string {
  let payload: unknown;
  try {
    payload = JSON.parse(submission.body.grader_payload);
  } catch {
    throw new MalformedSubmissionError('grader_payload is not valid JSON');
  }
  const parsed = payloadSchema.safeParse(payload);
  if (!parsed.success) throw new MalformedSubmissionError('grader_payload has no string "answer"');
  return parsed.data.answer;
}

function normalize(text: string, options: { trim: boolean; case_sensitive: boolean }): string {
  const trimmed = options.trim ? text.trim() : text;
  return options.case_sensitive ? trimmed : trimmed.toLowerCase();
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function exactAnswer(kwargs: z.infer<typeof exactKwargs>): Grader {
  return async (submission) => {
    const expected = expectedAnswer(submission);
    const correct =
      normalize(submission.body.student_response, kwargs) === normalize(expected, kwargs);
    const msg = correct ? '<p>Correct.</p>' : '<p>Incorrect.</p>';
    return { correct, score: correct ? 1 : 0, msg };
  };
}

function slowFlaky(kwargs: z.infer<typeof slowFlakyKwargs>, deps: GraderDeps): Grader {
  const grade = exactAnswer(kwargs);
  return async (submission, signal) => {
    await deps.sleep(kwargs.latency_ms + deps.random() * kwargs.jitter_ms, signal);
    if (deps.random() < kwargs.failure_rate) {
      throw new TransientGraderError('simulated grader failure (failure_rate)');
    }
    return grade(submission, signal);
  };
}

interface TestOutcome {
  name: string;
  expected: string;
  actual: string;
  correct: boolean;
}

/** Renders like upstream `Grader.render_results`, so the LMS shows the same HTML shape. */
function renderResults(tests: TestOutcome[], correct: boolean): string {
  const results = tests.map((test) =>
    test.correct
      ? `<div class="result-output result-correct"><h4>${escapeHtml(test.name)}</h4>` +
        `<dl><dt>Output:</dt><dd class="result-actual-output"><pre>${escapeHtml(test.actual)}</pre></dd></dl></div>`
      : `<div class="result-output result-incorrect"><h4>${escapeHtml(test.name)}</h4>` +
        `<dl><dt>Your output:</dt><dd class="result-actual-output"><pre>${escapeHtml(test.actual)}</pre></dd>` +
        `<dt>Correct output:</dt><dd><pre>${escapeHtml(test.expected)}</pre></dd></dl></div>`,
  );
  const status = correct ? 'CORRECT' : 'INCORRECT';
  return (
    '<div class="test"><header>Test results</header><section>' +
    `<div class="shortform">${status}</div><div class="longform">${results.join('')}</div>` +
    '</section></div>'
  );
}

/** One test per whitespace-separated token of the expected answer: partial credit. */
function testReport(kwargs: z.infer<typeof testReportKwargs>): Grader {
  return async (submission) => {
    const options = { trim: true, case_sensitive: kwargs.case_sensitive };
    const expected = expectedAnswer(submission).split(/\s+/).filter(Boolean);
    const actual = submission.body.student_response.split(/\s+/).filter(Boolean);
    const tests = (expected.length > 0 ? expected : ['']).map((token, index) => {
      const given = actual[index] ?? '';
      const correct = normalize(given, options) === normalize(token, options);
      return { name: `Test ${index + 1}`, expected: token, actual: given, correct };
    });
    const passed = tests.filter((test) => test.correct).length;
    const correct = passed === tests.length && actual.length === expected.length;
    const score = correct ? 1 : Math.min(passed / tests.length, 0.99);
    return { correct, score, msg: renderResults(tests, correct) };
  };
}

/**
 * Builds the grader for a validated handler spec.
 *
 * @example
 * const grade = createGrader({ name: 'exact-answer', kwargs: { trim: true, case_sensitive: true } }, deps);
 * await grade(submission); // { correct: true, score: 1, msg: '<p>Correct.</p>' }
 */
export function createGrader(spec: HandlerSpec, deps: GraderDeps): Grader {
  switch (spec.name) {
    case 'exact-answer':
      return exactAnswer(spec.kwargs);
    case 'slow-flaky':
      return slowFlaky(spec.kwargs, deps);
    case 'test-report':
      return testReport(spec.kwargs);
  }
}

/**
 * Runs a queue's handlers in order and returns the last one's result. Upstream posts one reply
 * per handler; we post one per pull so the LMS sees exactly one result per graded submission.
 */
export function chainGraders(graders: Grader[]): Grader {
  return async (submission, signal) => {
    let result: GradeResult | undefined;
    for (const grade of graders) result = await grade(submission, signal);
    if (!result) throw new MalformedSubmissionError('no handler produced a result');
    return result;
  };
}
