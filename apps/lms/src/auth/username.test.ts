import { describe, expect, it } from 'vitest';
import { openDatabase } from '../db/client.ts';
import { saveUser } from '../users.ts';
import { InvalidUsernameError, USERNAME_MAX_LENGTH, usernameProblem } from './username.ts';

describe("Django's username rule", () => {
  it('accepts 1 to 150 ASCII letters, digits and @ . + - _', () => {
    for (const username of ['a', 'xqueue_svc', 'Student.1+test@lab-x', 'z'.repeat(150)]) {
      expect(usernameProblem(username), username).toBeNull();
    }
  });

  it('refuses what the metrics labels and the session records use, markup and the rest', () => {
    for (const username of ['(cli)', '(people)', '<b>x</b>', 'a b', 'tab\t', 'é', 'a/b', '']) {
      expect(usernameProblem(username), username).not.toBeNull();
    }
    expect(usernameProblem('z'.repeat(USERNAME_MAX_LENGTH + 1))).toBe(
      'must be at most 150 characters (got 151)',
    );
  });

  it('is enforced by saveUser for a new account, which writes nothing then', () => {
    const database = openDatabase({ path: ':memory:' });
    try {
      const save = () =>
        saveUser(database.db, { username: '(people)', passwordHash: 'x', groups: ['g'], now: 0 });
      expect(save).toThrow(InvalidUsernameError);
      const counts = database.sqlite
        .prepare(
          'SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM groups) AS groups',
        )
        .get();
      expect(counts).toEqual({ users: 0, groups: 0 });
    } finally {
      database.close();
    }
  });
});
