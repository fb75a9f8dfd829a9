import { describe, expect, it } from 'vitest';
import { burstShare, compress, compressionNote } from './compression.ts';

describe('compress', () => {
  it('divides every production time and cost by the compression', () => {
    expect(compress(5)).toEqual({
      hashIterations: 200_000,
      pollIntervalSeconds: 0.2,
      loginPollIntervalSeconds: 1,
      requestsTimeoutSeconds: 0.2,
      pollTimeSeconds: 2,
      lockSeconds: 60,
      restartBackoffBaseMs: 2_000,
      restartBackoffMaxMs: 60_000,
      gradingMs: 200,
    });
  });

  it('keeps the production values at 1x', () => {
    expect(compress(1)).toEqual({
      hashIterations: 1_000_000,
      pollIntervalSeconds: 1,
      loginPollIntervalSeconds: 5,
      requestsTimeoutSeconds: 1,
      pollTimeSeconds: 10,
      lockSeconds: 300,
      restartBackoffBaseMs: 10_000,
      restartBackoffMaxMs: 300_000,
      gradingMs: 1_000,
    });
  });
});

describe('compressionNote', () => {
  it('states the rule and every compressed value', () => {
    const note = compressionNote(5, 6);
    expect(note).toContain('every production time and cost is divided by 5');
    expect(note).toContain('replicas start one after another');
    for (const value of [
      'PBKDF2 iterations 1,000,000 -> 200,000',
      'POLL_INTERVAL 1 s -> 200 ms',
      'LOGIN_POLL_INTERVAL 5 s -> 1 s',
      'REQUESTS_TIMEOUT 1 s -> 200 ms',
      'POLL_TIME 10 s -> 2 s',
      'XQUEUE_LOCK_SECONDS 300 -> 60',
      'replica restart backoff 10 s doubling to 5 min -> 2 s doubling to 60 s',
      'one grading 1 s -> 200 ms',
      '6 s of load stand for 30 s of production',
    ]) {
      expect(note).toContain(value);
    }
  });

  it('says an uncompressed run uses the production values', () => {
    const note = compressionNote(1, 120);
    expect(note).toMatch(/^none \(1x\): the production values/);
    expect(note).toContain('REQUESTS_TIMEOUT 1 s,');
    expect(note).not.toContain('->');
  });

  it('says when grading is instant', () => {
    expect(compress(2, 0).gradingMs).toBe(0);
    expect(compressionNote(2, 6, 0)).toContain('one grading instant -> instant');
    expect(compressionNote(2, 6, 3)).toContain('one grading 3 s -> 1.5 s');
  });
});

describe('burstShare', () => {
  it("divides the hash by a replica's connections per core, never by less than 1", () => {
    expect(burstShare(4, 2)).toBe(2);
    expect(burstShare(2, 8)).toBe(1);
    expect(burstShare(6, 4)).toBe(1.5);
    expect(burstShare(4, 0)).toBe(4);
    expect(compress(2, 1, 2).hashIterations).toBe(250_000);
    expect(compress(2, 1, 2).requestsTimeoutSeconds).toBe(0.5);
    expect(compressionNote(2, 6, 1, 2)).toContain(
      "PBKDF2 iterations 1,000,000 -> 250,000 (also divided by 2: a replica's first logins share fewer cores",
    );
    expect(compressionNote(1, 120, 1, 2)).toContain('1,000,000 -> 500,000');
  });
});
