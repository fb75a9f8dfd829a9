import { describe, expect, it } from 'vitest';
import { parsePrometheus, sumMetric, sumOf } from './prometheus.ts';

const TEXT = `# HELP lms_logins_total Logins
# TYPE lms_logins_total counter
lms_logins_total{account="xqueue_svc",path="xqueue"} 12
lms_logins_total{account="student1",path="web"} 2
lms_http_responses_total{route="/xqueue/get_submission/",status="403"} 5
lms_http_responses_total{route="/xqueue/put_result/",status="403"} 1
lms_http_responses_total{route="/xqueue/put_result/",status="200"} 9
lms_queue_length{queue="a \\"b\\""} 3
`;

describe('parsePrometheus', () => {
  it('reads names, labels (with escapes) and values', () => {
    const samples = parsePrometheus(TEXT);
    expect(samples).toHaveLength(6);
    expect(samples[5]).toEqual({ name: 'lms_queue_length', labels: { queue: 'a "b"' }, value: 3 });
  });

  it('sums a metric over the matching labels', () => {
    const samples = parsePrometheus(TEXT);
    expect(sumOf(samples, 'lms_logins_total')).toBe(14);
    expect(sumOf(samples, 'lms_logins_total', { path: 'xqueue' })).toBe(12);
    expect(sumOf(samples, 'lms_http_responses_total', { status: '403' })).toBe(6);
    expect(sumOf(samples, 'missing_total')).toBe(0);
  });

  it('sums straight from the text, matching labels exactly', () => {
    expect(sumMetric(TEXT, 'lms_logins_total', { account: 'student1' })).toBe(2);
    expect(sumMetric(TEXT, 'lms_logins_total', { account: 'student' })).toBe(0);
    expect(sumMetric('up 1\n', 'up')).toBe(1);
  });
});
