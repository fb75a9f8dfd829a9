import { setTimeout as sleep } from 'node:timers/promises';
import { WebClient, type WebClientOptions } from '@storm-lab/lms-client';
import type { Scenario } from '../scenarios.ts';
import { type RunSettings, studentAddress } from '../settings.ts';
import type { Stack } from './start-stack.ts';

/**
 * The student load of one scenario: `settings.submissions` submissions spread evenly over
 * `settings.durationSeconds` from `startedAt`, then (where the flag is on) one more person logs
 * in twice to check that single-session still holds for people, then the rest of the load's
 * time. Returns that check's answer, or `null` with the flag off.
 *
 * @example
 * const person = await driveLoad(stack, scenario, settings, Date.now());
 */
export async function driveLoad(
  { lms, load }: Pick<Stack, 'lms' | 'load'>,
  scenario: Scenario,
  settings: RunSettings,
  startedAt: number,
): Promise<boolean | null> {
  const intervalMs = (settings.durationSeconds * 1000) / Math.max(1, settings.submissions);
  for (let index = 0; index < settings.submissions; index++) {
    const due = startedAt + index * intervalMs;
    if (due > Date.now()) await sleep(due - Date.now());
    await load.submit(index);
  }
  const enforcing = scenario.lms.PREVENT_CONCURRENT_LOGINS !== 'false';
  const person = enforcing
    ? await checkPersonSingleSession(
        lms.url,
        `student${settings.students + 1}`,
        settings.studentPassword,
        settings.students + 1,
      )
    : null;
  const loadEnd = startedAt + settings.durationSeconds * 1000;
  if (loadEnd > Date.now()) await sleep(loadEnd - Date.now());
  return person;
}

/**
 * A student logs in twice; single-session holds when the first session is gone. The student
 * shares the fleet's address (loopback), whose logins in flight a storm can keep above the
 * throttle's budget: a 429 is tried again after its Retry-After, as a person would.
 */
export async function checkPersonSingleSession(
  lmsUrl: string,
  username: string,
  password: string,
  person: number,
  send?: WebClientOptions['fetch'],
) {
  // One person on two browsers of one machine.
  const address = { forwardedFor: studentAddress(person), ...(send && { fetch: send }) };
  const first = new WebClient(lmsUrl, address);
  const second = new WebClient(lmsUrl, address);
  const patience = { retryForMs: 10_000 };
  await first.login(username, password, patience);
  await second.login(username, password, patience);
  return !(await first.isLoggedIn()) && (await second.isLoggedIn());
}
