import { describe, expect, it } from 'vitest';
import { histogramQuantile, parsePrometheus, sumMetric, sumOf } from './prometheus.ts';

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

describe('histogramQuantile', () => {
  // Two series of one histogram (say two label sets): their buckets add up.
  const HISTOGRAM = parsePrometheus(`
h_seconds_bucket{le="0.001",store="a"} 30
h_seconds_bucket{le="0.001",store="b"} 20
h_seconds_bucket{le="0.002",store="a"} 50
h_seconds_bucket{le="0.002",store="b"} 40
h_seconds_bucket{le="0.005",store="a"} 59
h_seconds_bucket{le="0.005",store="b"} 40
h_seconds_bucket{le="+Inf",store="a"} 60
h_seconds_bucket{le="+Inf",store="b"} 40
h_seconds_count{store="a"} 60
`);

  it('interpolates inside the bucket the rank falls in, as PromQL does', () => {
    expect(histogramQuantile(HISTOGRAM, 'h_seconds', 0.5)).toBeCloseTo(0.001, 9);
    expect(histogramQuantile(HISTOGRAM, 'h_seconds', 0.7)).toBeCloseTo(0.0015, 9);
    expect(histogramQuantile(HISTOGRAM, 'h_seconds', 0.9)).toBeCloseTo(0.002, 9);
    expect(histogramQuantile(HISTOGRAM, 'h_seconds', 0.99)).toBeCloseTo(0.005, 9);
    expect(histogramQuantile(HISTOGRAM, 'h_seconds', 0.25)).toBeCloseTo(0.0005, 9);
  });

  it('answers the highest finite bound in +Inf, and NaN without samples', () => {
    expect(histogramQuantile(HISTOGRAM, 'h_seconds', 1)).toBe(0.005);
    expect(histogramQuantile(HISTOGRAM, 'other_seconds', 0.5)).toBeNaN();
  });
});
