import { createHmac, timingSafeEqual } from 'node:crypto';

// As Django's AbstractBaseUser.get_session_auth_hash: an HMAC of the stored password hash,
// kept in the session at login and compared on every request (django.contrib.auth.get_user),
// so a password change refuses every session issued before it, whoever changed it and
// wherever the sessions live. Django keys the HMAC with SECRET_KEY; the lab has none, so this
// key only separates the use. Without the database the digest reveals nothing: the hash it is
// taken of holds a random 22-character salt and the PBKDF2 output.
const KEY = 'storm-lab.lms.session-auth-hash';
// A checker keeps the digests of recent hashes, so that a request costs a map lookup, not an
// HMAC; cleared when full (a hash is about 90 bytes).
const MEMO_LIMIT = 4096;

function digest(passwordHash: string): Buffer {
  return createHmac('sha256', KEY).update(passwordHash).digest();
}

/**
 * The session auth hash of a stored password hash (64 hex digits): what a session records at
 * login. It changes whenever the password hash does: a new password, or a re-hash at another
 * PASSWORD_HASH_ITERATIONS (as in Django, which ends the account's other sessions once).
 *
 * @example
 * sessionAuthHash('pbkdf2_sha256$1000000$salt$hash'); // '5f0c…' (64 hex digits)
 */
export function sessionAuthHash(passwordHash: string): string {
  return digest(passwordHash).toString('hex');
}

/** Whether a session's recorded auth hash still matches its user's stored password hash. */
export type AuthHashCheck = (recorded: string | null | undefined, passwordHash: string) => boolean;

/**
 * Creates the per-request check (one per session store): compares a session's recorded auth
 * hash with that of its user's stored password hash, in constant time. A session without one
 * (recorded before the LMS kept it) does not match, as Django flushes a session without a hash.
 *
 * @example
 * const matches = createAuthHashCheck();
 * if (!matches(session.authHash, user.password)) refuse('password-change');
 */
export function createAuthHashCheck(): AuthHashCheck {
  const memo = new Map<string, Buffer>();
  return (recorded, passwordHash) => {
    if (typeof recorded !== 'string' || recorded.length !== 64) return false;
    let expected = memo.get(passwordHash);
    if (expected === undefined) {
      expected = digest(passwordHash);
      if (memo.size >= MEMO_LIMIT) memo.clear();
      memo.set(passwordHash, expected);
    }
    const given = Buffer.from(recorded, 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
}
