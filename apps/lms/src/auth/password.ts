import { pbkdf2, randomInt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

// Asynchronous pbkdf2 runs on libuv's thread pool: a burst of logins at a million iterations
// slows logins, not every other request on the event loop.
const pbkdf2Async = promisify(pbkdf2);

const ALGORITHM = 'pbkdf2_sha256';
const KEY_BYTES = 32;
const SALT_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
/** Iterations Django 5.2 uses for new hashes. */
export const DJANGO_ITERATIONS = 1_000_000;
// A stored hash with more iterations than this is refused rather than computed for minutes.
const MAX_ITERATIONS = 10_000_000;

function randomSalt(length = 22): string {
  let salt = '';
  for (let index = 0; index < length; index++) salt += SALT_CHARS[randomInt(SALT_CHARS.length)];
  return salt;
}

async function derive(password: string, salt: string, iterations: number): Promise<Buffer> {
  return pbkdf2Async(password, salt, iterations, KEY_BYTES, 'sha256');
}

/**
 * Hashes a password in Django's format, so real user rows can be imported and exported.
 *
 * @example
 * await hashPassword('secret', 1000); // 'pbkdf2_sha256$1000$Xy...$base64...'
 */
export async function hashPassword(password: string, iterations: number): Promise<string> {
  const salt = randomSalt();
  const hash = await derive(password, salt, iterations);
  return `${ALGORITHM}$${iterations}$${salt}$${hash.toString('base64')}`;
}

/**
 * Checks a password against a Django `pbkdf2_sha256` hash in constant time. A malformed hash
 * is a "no", never an exception.
 *
 * @example
 * if (await verifyPassword(input, user.password)) { ... }
 */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parts = encoded.split('$');
  if (parts.length !== 4) return false;
  const [algorithm, iterationsText = '', salt = '', hashText = ''] = parts;
  const iterations = Number(iterationsText);
  if (algorithm !== ALGORITHM || !Number.isInteger(iterations)) return false;
  if (iterations < 1 || iterations > MAX_ITERATIONS || salt === '') return false;
  const expected = Buffer.from(hashText, 'base64');
  if (expected.length !== KEY_BYTES) return false;
  return timingSafeEqual(await derive(password, salt, iterations), expected);
}

/**
 * The iteration count of a Django `pbkdf2_sha256` hash, or null when the hash is not one.
 *
 * @example
 * iterationsOf('pbkdf2_sha256$1000000$salt$hash'); // 1000000
 */
export function iterationsOf(encoded: string): number | null {
  const [algorithm, iterationsText] = encoded.split('$');
  const iterations = Number(iterationsText);
  return algorithm === ALGORITHM && Number.isInteger(iterations) && iterations > 0
    ? iterations
    : null;
}

/**
 * Spends the same time as a real check, for unknown usernames: answering them faster would tell
 * an attacker which usernames exist (Django does the same).
 */
export async function burnPasswordCheck(password: string, iterations: number): Promise<false> {
  await derive(password, 'timing-equaliser', iterations);
  return false;
}
