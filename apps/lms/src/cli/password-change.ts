import type { SessionsEnded } from '../sessions/accounts.ts';

/** What a password change did to the sessions, for the line that reports it. */
export function endedText(sessions: SessionsEnded): string {
  if ('unreachable' in sessions) {
    const { url, reason } = sessions.unreachable;
    return `; its sessions end on their next request (password-change): the session Redis at ${url} cannot be reached (${reason})`;
  }
  const { ended } = sessions;
  return ended ? `; ${ended} session${ended === 1 ? '' : 's'} ended (password-change)` : '';
}
