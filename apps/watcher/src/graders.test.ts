import type { PulledSubmission } from '@storm-lab/xqueue-protocol';
import { describe, expect, it } from 'vitest';
import {
  chainGraders,
  createGrader,
  type GraderDeps,
  MalformedSubmissionError,
  parseHandler,
  TransientGraderError,
} from './graders.ts';

function createTestSubmission(
  overrides: { response?: string; payload?: string } = {},
): PulledSubmission {
  return {
    header: { submission_id: 1, submission_key: 'k' },
    body: {
      student_response: overrides.response ?? '42',
      grader_payload: overrides.payload ?? JSON.stringify({ answer: '42' }),
      student_info: '{}',
    },
    files: {},
  };
}

function createTestDeps(randoms: number[] = []): GraderDeps & { slept: number[] } {
  const slept: number[] = [];
  return { slept, sleep: async (ms) => void slept.push(ms), random: () => randoms.shift() ?? 0.5 };
}

function grader(name: string, kwargs: Record<string, unknown> = {}, deps = createTestDeps()) {
  const spec = parseHandler(name, kwargs);
  if (!spec.ok) throw new Error(spec.error);
  return createGrader(spec.value, deps);
}

describe('parseHandler', () => {
  it('lists the accepted handler names for an unknown one', () => {
    expect(parseHandler('ContainerGrader', {})).toEqual({
      ok: false,
      error: expect.stringContaining(
        'accepted: exact-answer, slow-flaky, test-report, or a dotted Python path',
      ),
    });
  });

  // as xqueue-watcher's Manager.client_from_config imports a dotted HANDLER; a mock stands in
  it('stands a mock in for a Python grader path and keeps its KWARGS unvalidated', async () => {
    const kwargs = { grader_root: '/graders/', image: 'grader:1' };
    expect(parseHandler('xqueue_watcher.containergrader.ContainerGrader', kwargs)).toEqual({
      ok: true,
      value: {
        name: 'exact-answer',
        kwargs: { trim: true, case_sensitive: true },
        standInFor: 'xqueue_watcher.containergrader.ContainerGrader',
        pythonKwargs: kwargs,
      },
    });
    const chosen = parseHandler('my_graders.Grader', undefined, { pythonHandler: 'test-report' });
    expect(chosen).toEqual({
      ok: true,
      value: {
        name: 'test-report',
        kwargs: { case_sensitive: true },
        standInFor: 'my_graders.Grader',
        pythonKwargs: {},
      },
    });
    if (!chosen.ok) throw new Error(chosen.error);
    const grade = createGrader(chosen.value, createTestDeps());
    expect((await grade(createTestSubmission({ response: '42' }))).correct).toBe(true);
  });

  it('names the bad KWARGS field', () => {
    const parsed = parseHandler('slow-flaky', { failure_rate: 2 });
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error).toMatch(/KWARGS\.failure_rate/);
    expect(parseHandler('exact-answer', { nope: 1 }).ok).toBe(false);
  });
});

describe('exact-answer grader', () => {
  it('gives full credit for the expected answer and none otherwise', async () => {
    const grade = grader('exact-answer');
    expect(await grade(createTestSubmission({ response: ' 42 ' }))).toEqual({
      correct: true,
      score: 1,
      msg: '<p>Correct.</p>',
    });
    expect(await grade(createTestSubmission({ response: '41' }))).toMatchObject({
      correct: false,
      score: 0,
    });
  });

  it('compares case-insensitively when asked', async () => {
    const submission = createTestSubmission({ response: 'Paris', payload: '{"answer":"paris"}' });
    expect((await grader('exact-answer')(submission)).correct).toBe(false);
    expect((await grader('exact-answer', { case_sensitive: false })(submission)).correct).toBe(
      true,
    );
  });

  it('rejects a grader payload without an answer as malformed', async () => {
    const grade = grader('exact-answer');
    await expect(grade(createTestSubmission({ payload: 'not json' }))).rejects.toThrow(
      MalformedSubmissionError,
    );
    await expect(grade(createTestSubmission({ payload: '{"grader":"x.py"}' }))).rejects.toThrow(
      /no string "answer"/,
    );
  });
});

describe('slow-flaky grader', () => {
  it('waits the configured latency plus jitter before grading', async () => {
    const deps = createTestDeps([0.5, 0.9]);
    const grade = grader('slow-flaky', { latency_ms: 100, jitter_ms: 50, failure_rate: 0.5 }, deps);
    expect((await grade(createTestSubmission())).correct).toBe(true);
    expect(deps.slept).toEqual([125]);
  });

  it('fails transiently at the configured rate', async () => {
    const grade = grader('slow-flaky', { failure_rate: 0.5 }, createTestDeps([0, 0.2]));
    await expect(grade(createTestSubmission())).rejects.toThrow(TransientGraderError);
  });
});

describe('test-report grader', () => {
  it('returns upstream reply shape with partial credit and an HTML report', async () => {
    const grade = grader('test-report');
    const submission = createTestSubmission({ response: 'a b x', payload: '{"answer":"a b c"}' });
    const result = await grade(submission);
    expect(result.correct).toBe(false);
    expect(result.score).toBeCloseTo(2 / 3);
    expect(result.msg).toContain('<div class="shortform">INCORRECT</div>');
    expect(result.msg).toContain('<div class="result-output result-incorrect"><h4>Test 3</h4>');
  });

  it('marks a fully right answer CORRECT with score 1 and escapes student text', async () => {
    const grade = grader('test-report');
    const good = await grade(
      createTestSubmission({ response: '<b>', payload: '{"answer":"<b>"}' }),
    );
    expect(good).toMatchObject({ correct: true, score: 1 });
    expect(good.msg).toContain('&#60;b&#62;');
    expect(good.msg).not.toContain('<b>');
  });
});

describe('chainGraders', () => {
  it('runs handlers in order and returns the last result', async () => {
    const chained = chainGraders([grader('test-report'), grader('exact-answer')]);
    expect((await chained(createTestSubmission())).msg).toBe('<p>Correct.</p>');
  });
});
