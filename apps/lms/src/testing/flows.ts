import { decodeSubmission, type PulledSubmission } from '@storm-lab/xqueue-protocol';
import { expect } from 'vitest';
import { TestClient } from './client.ts';
import { createTestLms, type TestLms, type TestLmsOptions } from './fixtures.ts';

/** An LMS with a logged-in grader (xqueue_svc) and a logged-in student (student1). */
export interface GradingSetup {
  lms: TestLms;
  grader: TestClient;
  student: TestClient;
  submit(count?: number, queueName?: string): Promise<number[]>;
  pull(queueName?: string, client?: TestClient): Promise<PulledSubmission | null>;
  putResult(fields: Record<string, string>, client?: TestClient): Promise<Response>;
}

/**
 * Builds {@link GradingSetup} on a fresh test LMS.
 *
 * @example
 * const { submit, pull } = await createGradingSetup();
 * await submit(2);
 * const pulled = await pull();
 */
export async function createGradingSetup(options: TestLmsOptions = {}): Promise<GradingSetup> {
  const lms = await createTestLms(options);
  const grader = new TestClient(lms.fetcher);
  const student = new TestClient(lms.fetcher);
  expect((await grader.xqueueLogin('xqueue_svc', 'xqueue-pass')).status).toBe(200);
  expect((await student.webLogin('student1', 'student-pass')).status).toBe(200);
  return {
    lms,
    grader,
    student,
    async submit(count = 1, queueName = 'test-queue') {
      const ids: number[] = [];
      for (let index = 0; index < count; index++) {
        const response = await student.postJson('/api/submissions', {
          queue_name: queueName,
          problem_id: `${queueName}-p1`,
          student_response: `answer ${index}`,
        });
        expect(response.status).toBe(201);
        ids.push(((await response.json()) as { id: number }).id);
        lms.clock.advance(1);
      }
      return ids;
    },
    async pull(queueName = 'test-queue', client = grader) {
      const response = await client.get(`/xqueue/get_submission/?queue_name=${queueName}`);
      expect(response.status).toBe(200);
      const body = (await response.json()) as { return_code: number; content: unknown };
      if (body.return_code === 1) return null;
      const decoded = decodeSubmission(body.content);
      if (!decoded.ok) throw new Error(decoded.error);
      return decoded.value;
    },
    putResult(fields, client = grader) {
      return client.postForm('/xqueue/put_result/', fields);
    },
  };
}

/** put_result form fields for a pulled submission. */
export function resultFields(
  pulled: Pick<PulledSubmission, 'header'>,
  result = { correct: true, score: 1, msg: '<p>Good</p>' },
): Record<string, string> {
  return {
    xqueue_header: JSON.stringify({
      submission_id: pulled.header.submission_id,
      submission_key: pulled.header.submission_key,
    }),
    xqueue_body: JSON.stringify(result),
  };
}
