import { afterEach, describe, expect, it } from 'vitest';
import { TestClient } from '../testing/client.ts';
import type { TestLms } from '../testing/fixtures.ts';
import { createGradingSetup } from '../testing/flows.ts';

let lms: TestLms | undefined;
afterEach(() => lms?.close());

async function setup() {
  const grading = await createGradingSetup({ seed: { queues: ['test-queue', 'other-queue'] } });
  lms = grading.lms;
  return grading;
}

function countSubmissions(lms: TestLms): number {
  return (
    lms.database.sqlite.prepare('SELECT count(*) AS n FROM submissions').get() as { n: number }
  ).n;
}

describe('student submissions API', () => {
  it('creates a pending submission and counts it per queue', async () => {
    const { student } = await setup();
    const response = await student.postJson('/api/submissions', {
      queue_name: 'other-queue',
      problem_id: 'other-queue-p2',
      student_response: '42',
    });
    expect(response.status).toBe(201);
    const { id } = (await response.json()) as { id: number };
    expect(await (await student.get(`/api/submissions/${id}`)).json()).toEqual({
      id,
      queue_name: 'other-queue',
      problem_id: 'other-queue-p2',
      state: 'pending',
      created_at: '2025-01-01T00:00:00.000Z',
    });
    const metrics = await (await student.get('/metrics')).text();
    expect(metrics).toContain('lms_submissions_created_total{queue="other-queue"} 1');
    expect(metrics).toContain('lms_queue_length{queue="other-queue"} 1');
    expect(metrics).toContain('lms_queue_length{queue="test-queue"} 0');
  });

  it('refuses unknown queues and problems with a message and stores nothing', async () => {
    const { lms, student } = await setup();
    const cases = [
      [
        { queue_name: 'nope', problem_id: 'test-queue-p1', student_response: 'x' },
        "Queue 'nope' not found",
      ],
      [
        { queue_name: 'test-queue', problem_id: 'nope', student_response: 'x' },
        "Problem 'nope' not found in queue 'test-queue'",
      ],
      [
        { queue_name: 'test-queue', problem_id: 'other-queue-p1', student_response: 'x' },
        "Problem 'other-queue-p1' not found in queue 'test-queue'",
      ],
    ] as const;
    for (const [body, detail] of cases) {
      const response = await student.postJson('/api/submissions', body);
      expect(response.status).toBe(404);
      expect(await response.json()).toEqual({ detail });
    }
    expect(countSubmissions(lms)).toBe(0);
  });

  it('rejects wrong types, huge answers and non-JSON bodies with a 4xx', async () => {
    const { lms, student } = await setup();
    const valid = { queue_name: 'test-queue', problem_id: 'test-queue-p1', student_response: 'x' };
    for (const body of [
      { ...valid, student_response: 42 },
      { ...valid, queue_name: ['test-queue'] },
      { ...valid, student_response: 'x'.repeat(100_001) },
      { queue_name: 'test-queue' },
      [],
      'text',
    ]) {
      const response = await student.postJson('/api/submissions', body);
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({ detail: expect.any(String) });
    }
    const broken = await student.request('/api/submissions', {
      method: 'POST',
      body: '{"queue_name":',
      headers: { 'content-type': 'application/json' },
    });
    expect(await broken.json()).toEqual({ detail: 'Request body is not valid JSON' });
    const form = await student.postForm('/api/submissions', valid);
    expect(form.status).toBe(415);
    expect(countSubmissions(lms)).toBe(0);
  });

  it('requires a logged-in user and the CSRF token', async () => {
    const { lms, student } = await setup();
    const anonymous = new TestClient(lms.fetcher);
    const body = { queue_name: 'test-queue', problem_id: 'test-queue-p1', student_response: 'x' };
    expect((await anonymous.postJson('/api/submissions', body)).status).toBe(403);
    delete student.headers['X-CSRFToken'];
    const response = await student.postJson('/api/submissions', body);
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({ detail: 'CSRF Failed: CSRF token missing.' });
  });

  it("hides other students' submissions but shows them to staff", async () => {
    const { lms, submit } = await setup();
    const [id] = await submit(1);
    const other = new TestClient(lms.fetcher);
    await other.webLogin('student2', 'student-pass');
    expect((await other.get(`/api/submissions/${id}`)).status).toBe(404);
    expect((await other.get('/api/submissions/abc')).status).toBe(404);
    const staff = new TestClient(lms.fetcher);
    await staff.webLogin('staff', 'staff-pass');
    expect((await staff.get(`/api/submissions/${id}`)).status).toBe(200);
  });
});
