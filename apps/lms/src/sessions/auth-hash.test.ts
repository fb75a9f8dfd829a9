import { describe, expect, it } from 'vitest';
import { createAuthHashCheck, sessionAuthHash } from './auth-hash.ts';

describe('session auth hash', () => {
  const stored = 'pbkdf2_sha256$1000$saltsaltsaltsaltsalt12$Zm9v';

  it('matches the hash of the same stored password hash only', () => {
    const matches = createAuthHashCheck();
    const recorded = sessionAuthHash(stored);
    expect(recorded).toMatch(/^[0-9a-f]{64}$/);
    expect(matches(recorded, stored)).toBe(true);
    // Again, from the memo.
    expect(matches(recorded, stored)).toBe(true);
    expect(matches(recorded, `${stored}x`)).toBe(false);
    expect(matches(sessionAuthHash(`${stored}x`), stored)).toBe(false);
  });

  it('refuses a session that recorded none, or something that is not one', () => {
    const matches = createAuthHashCheck();
    for (const recorded of [
      null,
      undefined,
      '',
      'zz'.repeat(32),
      sessionAuthHash(stored).slice(1),
    ]) {
      expect(matches(recorded, stored), String(recorded)).toBe(false);
    }
  });
});
