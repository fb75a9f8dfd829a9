import { describe, expect, it } from 'vitest';
import {
  decodeSubmission,
  encodeStudentInfo,
  encodeSubmission,
  failure,
  parseEnvelope,
  parseGradeResult,
  parseXQueueHeader,
  success,
} from './protocol.ts';

describe('envelope', () => {
  it('builds and parses success and failure', () => {
    expect(success('x')).toEqual({ return_code: 0, content: 'x' });
    expect(failure("Queue 'q' is empty")).toEqual({
      return_code: 1,
      content: "Queue 'q' is empty",
    });
    expect(parseEnvelope('{"return_code":1,"content":"nope"}')).toEqual({
      ok: true,
      value: { return_code: 1, content: 'nope' },
    });
  });

  it('rejects what is not an envelope', () => {
    expect(parseEnvelope('<html>')).toEqual({ ok: false, error: 'response is not valid JSON' });
    expect(parseEnvelope('{"return_code":2,"content":""}').ok).toBe(false);
  });
});

describe('parseXQueueHeader', () => {
  it('reads submission id and key', () => {
    expect(parseXQueueHeader('{"submission_id":7,"submission_key":"abc"}')).toEqual({
      ok: true,
      value: { submission_id: 7, submission_key: 'abc' },
    });
  });

  it.each([
    [undefined, 'xqueue_header must be a JSON string'],
    ['{', 'xqueue_header is not valid JSON'],
    ['[]', 'xqueue_header is invalid'],
    ['{"submission_id":"7","submission_key":"k"}', 'submission_id'],
    ['{"submission_id":7}', 'submission_key'],
    ['{"submission_id":-1,"submission_key":"k"}', 'submission_id'],
  ])('refuses %j with a message', (raw, message) => {
    const parsed = parseXQueueHeader(raw);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toContain(message);
  });
});

describe('parseGradeResult', () => {
  it('reads the upstream reply shape', () => {
    expect(parseGradeResult('{"correct":true,"score":1,"msg":"<p>ok</p>"}')).toEqual({
      ok: true,
      value: { correct: true, score: 1, msg: '<p>ok</p>' },
    });
  });

  it('refuses a wrong type', () => {
    expect(parseGradeResult('{"correct":"yes","score":1,"msg":""}').ok).toBe(false);
  });
});

describe('encodeStudentInfo', () => {
  // as edx-submissions' get_submission: unix seconds as a string, random_seed 1
  it('writes the anonymous id, the submission time in whole seconds and random_seed 1', () => {
    expect(JSON.parse(encodeStudentInfo('abc', Date.UTC(2025, 0, 1) + 999))).toEqual({
      anonymous_student_id: 'abc',
      submission_time: '1735689600',
      random_seed: 1,
    });
  });
});

describe('encodeSubmission / decodeSubmission', () => {
  it('round-trips the nested JSON strings that xqueue uses', () => {
    const submission = {
      header: { submission_id: 3, submission_key: 'k1' },
      body: { student_response: '42', grader_payload: '{"answer":"42"}', student_info: '{}' },
      files: {},
    };
    const content = encodeSubmission(submission);
    expect(typeof JSON.parse(content).xqueue_header).toBe('string');
    // Upstream's key order, whatever order the caller used.
    expect(Object.keys(JSON.parse(JSON.parse(content).xqueue_body))).toEqual([
      'grader_payload',
      'student_info',
      'student_response',
    ]);
    expect(decodeSubmission(content)).toEqual({ ok: true, value: submission });
  });

  it('says which part is broken', () => {
    const bad = JSON.stringify({ xqueue_header: '{}', xqueue_body: '{}', xqueue_files: '{}' });
    const decoded = decodeSubmission(bad);
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) expect(decoded.error).toMatch(/^xqueue_header is invalid/);
  });
});
