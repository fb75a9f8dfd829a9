import type { Outcome, StudentLoad } from '../student-load.ts';

/** How often the drain asks the LMS, in ms of the run. */
const DRAIN_POLL_MS = 100;

export interface DrainOptions {
  /**
   * Asked before each round: the students ask about their submissions only when it says yes.
   * The simulator passes the LMS's own count ("every submission graded"), so that a long stalled
   * drain does not ask about hundreds of submissions ten times a second. Default: always ask.
   */
  askWhen?: () => Promise<boolean>;
}

/**
 * After the load: asks the LMS about every submission not yet graded, ten times a second, until
 * all are graded or `drainSeconds` have passed. Returns what the LMS last said of each it asked
 * about. Waits on the global timers, so it runs on the simulator's virtual clock as well.
 *
 * @example
 * const outcomes = await drain(stack.load, settings.drainSeconds);
 */
export async function drain(
  load: Pick<StudentLoad, 'submitted' | 'outcome'>,
  drainSeconds: number,
  options: DrainOptions = {},
): Promise<Map<number, Outcome>> {
  const deadline = Date.now() + drainSeconds * 1000;
  const outcomes = new Map<number, Outcome>();
  for (;;) {
    if (!options.askWhen || (await options.askWhen())) {
      const pending = load.submitted.filter((submission) => !outcomes.get(submission.id)?.graded);
      const results = await Promise.all(pending.map((submission) => load.outcome(submission)));
      pending.forEach((submission, index) => {
        outcomes.set(submission.id, results[index] as Outcome);
      });
    }
    if (gradedOf(outcomes) === load.submitted.length || Date.now() >= deadline) return outcomes;
    await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
  }
}

/** How many of `outcomes` are graded. */
export function gradedOf(outcomes: ReadonlyMap<number, Outcome>): number {
  return [...outcomes.values()].filter((outcome) => outcome.graded).length;
}
