import { setTimeout as sleep } from 'node:timers/promises';
import type { Outcome, StudentLoad } from '../student-load.ts';

/**
 * After the load: asks the LMS about every submission not yet graded, ten times a second, until
 * all are graded or `drainSeconds` have passed. Returns what the LMS last said of each.
 *
 * @example
 * const outcomes = await drain(stack.load, settings.drainSeconds);
 */
export async function drain(
  load: Pick<StudentLoad, 'submitted' | 'outcome'>,
  drainSeconds: number,
): Promise<Map<number, Outcome>> {
  const deadline = Date.now() + drainSeconds * 1000;
  const outcomes = new Map<number, Outcome>();
  for (;;) {
    const pending = load.submitted.filter((submission) => !outcomes.get(submission.id)?.graded);
    const results = await Promise.all(pending.map((submission) => load.outcome(submission)));
    pending.forEach((submission, index) => {
      outcomes.set(submission.id, results[index] as Outcome);
    });
    if (gradedOf(outcomes) === load.submitted.length || Date.now() >= deadline) return outcomes;
    await sleep(100);
  }
}

/** How many of `outcomes` are graded. */
export function gradedOf(outcomes: ReadonlyMap<number, Outcome>): number {
  return [...outcomes.values()].filter((outcome) => outcome.graded).length;
}
