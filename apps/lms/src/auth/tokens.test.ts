import { describe, expect, it } from 'vitest';
import { newCsrfToken, newPullKey, newSessionToken, sessionIdOf } from './tokens.ts';

const SAMPLES = 10_000;
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Pearson's chi-square of character counts against a uniform distribution over `alphabet`. */
function chiSquare(texts: readonly string[], alphabet: string): number {
  const counts = new Map<string, number>([...alphabet].map((char) => [char, 0]));
  let total = 0;
  for (const text of texts) {
    for (const char of text) {
      counts.set(char, (counts.get(char) ?? 0) + 1);
      total++;
    }
  }
  const expected = total / alphabet.length;
  let sum = 0;
  for (const observed of counts.values()) sum += (observed - expected) ** 2 / expected;
  return sum;
}

describe('session and pull keys', () => {
  it('draws session tokens of 256 random bits: 10,000 distinct, evenly spread characters', () => {
    const tokens = Array.from({ length: SAMPLES }, () => newSessionToken().token);
    for (const token of tokens) expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(new Set(tokens).size).toBe(SAMPLES);
    // 43 base64url characters carry 258 bits; the 43rd holds only the last 4 bits of 32 bytes.
    const full = tokens.map((token) => token.slice(0, 42));
    // 63 degrees of freedom: mean 63, sd 11.2. 150 is ~7.8 sd away (p < 1e-10) yet catches any
    // skew a weak generator or a narrowed alphabet would show.
    const statistic = chiSquare(full, BASE64URL);
    expect(statistic).toBeLessThan(150);
    // A generator that only uses half the alphabet scores far above the bound.
    expect(
      chiSquare(
        full.map((token) => token.replace(/[a-z]/g, 'A')),
        BASE64URL,
      ),
    ).toBeGreaterThan(150);
  });

  it('stores only the SHA-256 of a token: the id does not reveal the cookie', () => {
    const { token, id } = newSessionToken();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(id).toBe(sessionIdOf(token));
    expect(id).not.toContain(token);
    // FIPS 180-2's test vector, so the hash is SHA-256 and not merely what the code computes.
    expect(sessionIdOf('abc')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });

  it('draws pull keys of 128 random bits and CSRF tokens of 190 bits, all distinct', () => {
    const keys = Array.from({ length: SAMPLES }, newPullKey);
    for (const key of keys) expect(key).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set(keys).size).toBe(SAMPLES);
    expect(chiSquare(keys, '0123456789abcdef')).toBeLessThan(60);
    const csrf = Array.from({ length: SAMPLES }, newCsrfToken);
    for (const token of csrf) expect(token).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(new Set(csrf).size).toBe(SAMPLES);
    const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
    expect(chiSquare(csrf, alphabet)).toBeLessThan(150);
  });
});
