import crypto, { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

// 32 random bytes = 256 bits, above the 128 bits a session key needs against guessing.
const SESSION_TOKEN_BYTES = 32;
const SESSION_TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const CSRF_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const CSRF_PATTERN = /^[A-Za-z0-9]{32,64}$/;

// Every request hashes its cookie; the one-shot crypto.hash (Node >= 20.12) skips the Hash
// object that createHash builds. Same digest either way.
const sha256Hex: (text: string) => string =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'hex')
    : (text) => createHash('sha256').update(text).digest('hex');

/**
 * The stored id of a session: SHA-256 of the cookie token, so the database never holds a
 * usable cookie.
 */
export function sessionIdOf(token: string): string {
  return sha256Hex(token);
}

/**
 * A fresh cookie token and its stored id.
 *
 * @example
 * const { token, id } = newSessionToken(); // token goes in the cookie, id in the database
 */
export function newSessionToken(): { token: string; id: string } {
  const token = randomSlice(SESSION_TOKEN_BYTES).toString('base64url');
  return { token, id: sessionIdOf(token) };
}

/** Whether a cookie value could be one of our session tokens (anything else is anonymous). */
export function isSessionToken(value: string | undefined): value is string {
  return value !== undefined && SESSION_TOKEN_PATTERN.test(value);
}

const CSRF_TOKEN_LENGTH = 32;
// The largest multiple of the alphabet's 62 characters a byte holds (248): a byte below it picks
// a character uniformly (its remainder), one at or above it is skipped, as randomInt does.
const CSRF_BYTE_LIMIT = 256 - (256 % CSRF_CHARS.length);

/** A CSRF token in Django's alphabet and length (32 characters), each character uniform. */
export function newCsrfToken(): string {
  let token = '';
  while (token.length < CSRF_TOKEN_LENGTH) {
    // A login makes two tokens; drawn from the pool, not 32 randomInt calls each.
    for (const byte of randomSlice(CSRF_TOKEN_LENGTH - token.length)) {
      if (byte < CSRF_BYTE_LIMIT) token += CSRF_CHARS[byte % CSRF_CHARS.length];
    }
  }
  return token;
}

/** Whether a csrftoken cookie value is well formed. */
export function isCsrfToken(value: string | undefined): value is string {
  return value !== undefined && CSRF_PATTERN.test(value);
}

/** Constant-time string equality. */
export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** The first 8 characters of an id, for logs: enough to correlate, too little to use. */
export function shortId(id: string): string {
  return id.slice(0, 8);
}

// One randomBytes call costs more than the rest of making a session token or a pull key (a
// storm makes one per login and one per pull); as Node does for randomUUID, draw 4 KiB at a
// time. Each byte is used once.
const RANDOM_POOL_BYTES = 4096;
let randomPool = Buffer.alloc(0);
let randomOffset = 0;

/** `bytes` fresh random bytes (at most {@link RANDOM_POOL_BYTES}), never handed out before. */
function randomSlice(bytes: number): Buffer {
  if (randomOffset + bytes > randomPool.length) {
    randomPool = randomBytes(RANDOM_POOL_BYTES);
    randomOffset = 0;
  }
  const slice = randomPool.subarray(randomOffset, randomOffset + bytes);
  randomOffset += bytes;
  return slice;
}

const PULL_KEY_BYTES = 16;

/** A pull key for get_submission: 128 random bits, hex (what xqueue's `make_hashkey` yields). */
export function newPullKey(): string {
  return randomSlice(PULL_KEY_BYTES).toString('hex');
}
