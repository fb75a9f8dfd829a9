import { Hono } from 'hono';
import { z } from 'zod';
import type { LmsEnv, Services } from '../http/context.ts';
import { requireUser } from '../http/session.ts';
import { createSubmission, findSubmission, type SubmissionRow } from '../queue/submissions.ts';

const MAX_RESPONSE_LENGTH = 100_000;
const CANONICAL_ID = /^[1-9][0-9]{0,15}$/;

const newSubmissionSchema = z.object({
  queue_name: z.string().min(1).max(128),
  problem_id: z.string().min(1).max(128),
  student_response: z.string().max(MAX_RESPONSE_LENGTH),
});

function describe(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`)
    .join('; ');
}

function view(row: SubmissionRow) {
  const base = {
    id: row.id,
    queue_name: row.queueName,
    problem_id: row.problemId,
    state: row.state,
    created_at: new Date(row.createdAt).toISOString(),
  };
  if (row.state !== 'graded' || row.result === null || row.gradedAt === null) return base;
  const result = JSON.parse(row.result) as { correct: boolean; score: number; msg: string };
  return {
    ...base,
    graded_at: new Date(row.gradedAt).toISOString(),
    grading_latency_seconds: (row.gradedAt - row.createdAt) / 1000,
    correct: result.correct,
    score: result.score,
    msg: result.msg,
  };
}

/**
 * The student API: submit an answer to a queue's problem, then poll its state and grade.
 *
 * @example
 * app.route('/api/submissions', submissionRoutes(services));
 */
export function submissionRoutes(services: Services) {
  const app = new Hono<LmsEnv>();
  app.use('*', requireUser());

  app.post('/', async (c) => {
    if (!(c.req.header('content-type') ?? '').toLowerCase().startsWith('application/json')) {
      return c.json({ detail: 'Send a JSON object (Content-Type: application/json)' }, 415);
    }
    let raw: unknown;
    try {
      raw = await c.req.json();
    } catch {
      return c.json({ detail: 'Request body is not valid JSON' }, 400);
    }
    const parsed = newSubmissionSchema.safeParse(raw);
    if (!parsed.success) return c.json({ detail: describe(parsed.error) }, 400);
    const auth = c.get('auth')!;
    const created = createSubmission(services.db, {
      studentId: auth.user.id,
      queueName: parsed.data.queue_name,
      problemId: parsed.data.problem_id,
      studentResponse: parsed.data.student_response,
      now: services.now(),
    });
    if (!created.ok) return c.json({ detail: created.message }, created.status);
    services.metrics.submissionsCreated.inc({ queue: parsed.data.queue_name });
    return c.json({ id: created.id }, 201);
  });

  app.get('/:id', (c) => {
    // Only the canonical decimal id: Number() would also read '1e0', '0x1' or ' 1' as 1.
    const text = c.req.param('id');
    const id = CANONICAL_ID.test(text) ? Number(text) : Number.NaN;
    const auth = c.get('auth')!;
    const row = Number.isSafeInteger(id) ? findSubmission(services.db, id) : null;
    // Someone else's submission is reported as missing, so ids reveal nothing.
    if (!row || (row.studentId !== auth.user.id && !auth.user.isStaff)) {
      return c.json({ detail: 'Submission not found' }, 404);
    }
    return c.json(view(row));
  });
  return app;
}
