import { expect } from 'vitest';
import { TestClient } from './client.ts';
import type { TestLms } from './fixtures.ts';

/** One entry of `GET /api/sessions` (and, with `tracked`, of the staff list). */
export interface ListedSession {
  id: string;
  created: string;
  last_seen: string;
  client_instance: string | null;
  user_agent: string | null;
  address: string | null;
  current: boolean;
  tracked?: boolean;
}

/**
 * A browser of USERNAME logged in through `POST /login`, with its own cookie jar; `headers` go
 * with every request (the login's `User-Agent`, say).
 *
 * @example
 * const phone = await browserOf(lms, 'student1', { 'User-Agent': 'phone' });
 */
export async function browserOf(
  lms: TestLms,
  username: string,
  headers: Record<string, string> = {},
): Promise<TestClient> {
  const client = new TestClient(lms.fetcher);
  Object.assign(client.headers, headers);
  const password = username === 'staff' ? 'staff-pass' : 'student-pass';
  expect((await client.webLogin(username, password)).status).toBe(200);
  return client;
}

/** The sessions a client's `GET path` lists (200 expected). */
export async function listed(client: TestClient, path = '/api/sessions'): Promise<ListedSession[]> {
  const response = await client.get(path);
  expect(response.status).toBe(200);
  return ((await response.json()) as { sessions: ListedSession[] }).sessions;
}

/** The short id of the session a client's own list marks current. */
export async function currentShortId(client: TestClient): Promise<string> {
  const current = (await listed(client)).find((session) => session.current);
  if (!current) throw new Error('no current session in the list');
  return current.id;
}

/** The tombstone of the session with this short id, straight from the database. */
export function tombstoneOf(lms: TestLms, short: string) {
  return lms.database.sqlite
    .prepare(
      'SELECT reason, ended_by AS endedBy FROM session_ends WHERE substr(session_id, 1, 8) = ?',
    )
    .get(short) as { reason: string; endedBy: string | null } | undefined;
}

/** The full ids of every live session, from the app's store, to prove no answer carries one. */
export async function storedSessionIds(lms: TestLms): Promise<string[]> {
  const ids: string[] = [];
  for (const userId of (await lms.sessions.liveCounts()).keys()) {
    for (const session of await lms.sessions.details(userId)) ids.push(session.id);
  }
  return ids;
}

/** What a client whose session ended is told on its next request to the student API. */
export async function endedReason(client: TestClient) {
  const response = await client.get('/api/sessions');
  const body = (await response.json()) as { session_end?: { reason: string } };
  return {
    status: response.status,
    header: response.headers.get('X-Session-End-Reason'),
    reason: body.session_end?.reason,
  };
}
