// Django's username rule (django.contrib.auth: AbstractUser.username, max_length 150, with
// ASCIIUsernameValidator's `^[\w.@+-]+\Z`), which Django's user forms apply. Every account the
// LMS creates follows it, from any door: the metrics labels `(people)` and the CLI's `(cli)`
// rely on no username having parentheses, and no markup can be one.

/** Django's `AbstractUser.username` max_length. */
export const USERNAME_MAX_LENGTH = 150;

const USERNAME_PATTERN = /^[A-Za-z0-9@.+_-]+$/;

/**
 * Why a username is refused, or null when Django would accept it: 1 to 150 ASCII letters,
 * digits and `@ . + - _`.
 *
 * @example
 * usernameProblem('xqueue_svc'); // null
 * usernameProblem('(people)'); // 'may contain only letters, digits and @ . + - _ (Django's username rule)'
 */
export function usernameProblem(username: string): string | null {
  if (username.length === 0) return 'must not be empty';
  if (username.length > USERNAME_MAX_LENGTH) {
    return `must be at most ${USERNAME_MAX_LENGTH} characters (got ${username.length})`;
  }
  if (!USERNAME_PATTERN.test(username)) {
    return "may contain only letters, digits and @ . + - _ (Django's username rule)";
  }
  return null;
}

/** A username Django would refuse, given to something that creates an account. */
export class InvalidUsernameError extends Error {
  override readonly name = 'InvalidUsernameError';

  constructor(
    readonly username: string,
    readonly problem: string,
  ) {
    super(`username ${JSON.stringify(username)} ${problem}`);
  }
}
