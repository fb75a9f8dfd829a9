import { describe, expect, it } from 'vitest';
import { parseGraderReply } from './grader-reply.ts';

const header = (fields: Record<string, unknown>) => JSON.stringify(fields);
const KEY = { submission_key: 'k' };

describe('parseGraderReply', () => {
  // as edx-submissions' XQueueViewSet.validate_grader_reply: only `score` is read from the body
  it('reads the id, the key and the score, and keeps correct and msg when typed right', () => {
    expect(
      parseGraderReply(
        header({ submission_id: 7, ...KEY }),
        '{"correct":true,"score":1,"msg":"<p>ok</p>"}',
      ),
    ).toEqual({
      ok: true,
      value: { submission_id: 7, submission_key: 'k', score: 1, correct: true, msg: '<p>ok</p>' },
    });
    expect(parseGraderReply(header({ submission_id: 7, ...KEY }), '{"score":0.5}')).toEqual({
      ok: true,
      value: { submission_id: 7, submission_key: 'k', score: 0.5 },
    });
    expect(
      parseGraderReply(header({ submission_id: 7, ...KEY }), '{"correct":"yes","msg":5}'),
    ).toEqual({ ok: true, value: { submission_id: 7, submission_key: 'k', score: null } });
  });

  // as Python's int() on the header's submission_id
  it.each([
    ['7', 7],
    [' 7 ', 7],
    ['+7', 7],
    ['-7', -7],
    ['1_000', 1000],
    [7.0, 7],
    [0, 0],
  ])('reads submission_id %j as %d', (id, expected) => {
    const parsed = parseGraderReply(header({ submission_id: id, ...KEY }), '{}');
    expect(parsed).toMatchObject({ ok: true, value: { submission_id: expected } });
  });

  it.each([
    [{ score: 3 }, 3],
    [{ score: '3' }, 3],
    [{ score: ' 0.25 ' }, 0.25],
    [{ score: -1 }, null],
    [{ score: '-1' }, null],
    [{ score: 'high' }, null],
    [{ score: true }, null],
    [{ score: null }, null],
    [{}, null],
  ])('reads body %j as score %j', (body, expected) => {
    const parsed = parseGraderReply(header({ submission_id: 1, ...KEY }), JSON.stringify(body));
    expect(parsed).toMatchObject({ ok: true, value: { score: expected } });
  });

  it('keeps a key that is not a string as null: it can match nothing', () => {
    const parsed = parseGraderReply(header({ submission_id: 1, submission_key: 5 }), '{}');
    expect(parsed).toMatchObject({ ok: true, value: { submission_key: null } });
  });

  it.each([
    [undefined, '{}', 'xqueue_header is missing'],
    [5, '{}', 'xqueue_header must be a JSON string'],
    ['{', '{}', 'xqueue_header is not valid JSON'],
    ['[]', '{}', 'xqueue_header must be a JSON object'],
    [header({ submission_id: 1 }), '{}', 'xqueue_header has no submission_key'],
    [header(KEY), '{}', 'xqueue_header has no submission_id'],
    [
      header({ submission_id: 'x', ...KEY }),
      '{}',
      'xqueue_header: submission_id is not an integer',
    ],
    [
      header({ submission_id: 1.5, ...KEY }),
      '{}',
      'xqueue_header: submission_id is not an integer',
    ],
    [
      header({ submission_id: '1__0', ...KEY }),
      '{}',
      'xqueue_header: submission_id is not an integer',
    ],
    [header({ submission_id: 1, ...KEY }), undefined, 'xqueue_body is missing'],
    [header({ submission_id: 1, ...KEY }), 'nope', 'xqueue_body is not valid JSON'],
    [header({ submission_id: 1, ...KEY }), '[1]', 'xqueue_body must be a JSON object'],
    [header({ submission_id: 1, ...KEY }), 'null', 'xqueue_body must be a JSON object'],
  ])('refuses header %j with body %j: %s', (rawHeader, rawBody, error) => {
    expect(parseGraderReply(rawHeader, rawBody)).toEqual({ ok: false, error });
  });
});
