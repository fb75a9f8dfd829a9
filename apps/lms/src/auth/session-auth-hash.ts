import { createHmac, timingSafeEqual } from 'node:crypto';

// As Django's AbstractBaseUser.get_session_auth_hash: an HMAC of the stored password hash,
// kept in the session at login and compared on every request (django.contrib.auth.get_user),
// so a password change refuses every session issued before it, whoever changed it and
// wherever the sessions live. Django keys the HMAC with SECRET_KEY; the lab has none, so this
// key only separates the use. Without the database the digest reveals nothing: the hash it is
// taken of holds a random 22-character salt and the PBKDF2 output.
const KEY = 'storm-lab.lms.session-auth-hash';
// Every request compares against its user's hash: the digests of recent hashes are kept so
// that a request costs a map lookup, not an HMAC. Cleared when full (a hash is ~90 bytes).
const MEMO_LIMIT = 4096;
const memo = new Map<string, Buffer>();

function digest(passwordHash: string): Buffer {
  let known = memo.get(passwordHash);
  if (known === undefined) {
    known = createHmac('sha256', KEY).update(passwordHash).digest();
    if (memo.size >= MEMO_LIMIT) memo.clear();
    memo.set(passwordHash, known);
  }
  return known;
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

/**
 * Whether a session's recorded auth hash still matches its user's stored password hash,
 * compared in constant time. A session without one (recorded before the LMS kept it, or by a
 * caller that gave none) does not match, as Django flushes a session without a hash.
 *
 * @example
 * if (!authHashMatches(session.authHash, user.password)) refuse('password-change');
 */
export function authHashMatches(recorded: string | null | undefined, passwordHash: string) {
  if (typeof recorded !== 'string' || recorded.length !== 64) return false;
  const expected = digest(passwordHash);
  const given = Buffer.from(recorded, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
