/** A replica's event line as the harness reports it (`WatcherEventLine`), the parts read here. */
export interface EventLine {
  event: string;
  /** The process (replica incarnation) that printed it. */
  pid: number;
  /** When the line was read; every line of a process is read before its kill is noted. */
  atMs: number;
  fields: Record<string, unknown>;
}

/** One grading a BullMQ processor ran: its `grading-started` line and, if printed, its finish. */
export interface Grading {
  submissionId: number;
  jobId: string;
  pid: number;
  startedAtMs: number;
  /** The finish line's outcome (`failed` when the grading threw); null when none was printed. */
  outcome: string | null;
}

/** A SIGKILL the run sent to a replica: its pid, and when its last output had been read. */
export interface ReplicaKill {
  pid: number;
  atMs: number;
}

/** When the run restarted the jobs' Redis empty: every job and lock in it was lost. */
export interface StoreLoss {
  /** When the new, empty Redis answered. */
  atMs: number;
}

/**
 * The gradings in a run's event lines: each `grading-finished` (printed once BullMQ marked the
 * job done) paired with the latest open `grading-started` of the same process and job. One
 * process runs a job at most once at a time, so a start while another of the same job is open
 * means the earlier one's job was lost (its Redis restarted empty) and the job was added and
 * started again: a later finish is the later start's.
 *
 * @example
 * const gradings = gradingsOf(lines); // [{ submissionId: 7, pid: 101, outcome: 'correct', ... }]
 */
export function gradingsOf(lines: readonly EventLine[]): Grading[] {
  const gradings: Grading[] = [];
  const open = new Map<string, Grading[]>();
  for (const { event, pid, atMs, fields } of lines) {
    const { submissionId, jobId, outcome } = fields;
    if (typeof submissionId !== 'number' || typeof jobId !== 'string') continue;
    const key = `${pid} ${jobId}`;
    if (event === 'grading-started') {
      const grading: Grading = { submissionId, jobId, pid, startedAtMs: atMs, outcome: null };
      gradings.push(grading);
      open.set(key, [...(open.get(key) ?? []), grading]);
    } else if (event === 'grading-finished') {
      const started = open.get(key)?.pop();
      if (started) started.outcome = typeof outcome === 'string' ? outcome : 'unknown';
    }
  }
  return gradings;
}

/** What {@link countGradings} found, as sorted submission ids. */
export interface GradingCount {
  /** Graded again after an earlier grading that was not an excused one. */
  gradedTwice: number[];
  /** Graded more than once, every repeat excused (a failed grading, or a killed grader). */
  redelivered: number[];
}

/**
 * Counts gradings per submission, where grading happens. A grading after an earlier one of the
 * same submission is a repeat, excused only when every earlier grading either failed (it threw,
 * produced no accepted result, and BullMQ retried it) or has no finish line (BullMQ never marked
 * its job done) and, after it started and before the repeat started, its process was SIGKILLed
 * or the jobs' Redis was restarted empty: at-least-once redelivery of a job that was lost
 * unfinished (the LMS serves its pull again once the lock expires). Anything else is graded
 * twice: two finished gradings, in one process or two; a repeat while the first grader was
 * alive and its job kept (a lapsed BullMQ lock); a repeat after a finished grading (a lost Redis
 * job the LMS served again); or after a grader that was killed, or a Redis that was emptied,
 * only once the repeat had started.
 *
 * A pid reused by a later process within one run is not told apart (the kernel hands pids out
 * in order, so not within a run's few hundred processes).
 *
 * @example
 * countGradings(
 *   [{ submissionId: 7, jobId: 'j', pid: 101, startedAtMs: 1_000, outcome: null },
 *    { submissionId: 7, jobId: 'j', pid: 102, startedAtMs: 4_000, outcome: 'correct' }],
 *   [{ pid: 101, atMs: 1_050 }],
 * ); // { gradedTwice: [], redelivered: [7] }
 */
export function countGradings(
  gradings: readonly Grading[],
  kills: readonly ReplicaKill[],
  storeLosses: readonly StoreLoss[] = [],
): GradingCount {
  const gradedTwice: number[] = [];
  const redelivered: number[] = [];
  for (const [submissionId, list] of bySubmission(gradings)) {
    if (list.length < 2) continue;
    const inOrder = [...list].sort((a, b) => a.startedAtMs - b.startedAtMs);
    const excused = inOrder
      .slice(1)
      .every((repeat, index) =>
        inOrder
          .slice(0, index + 1)
          .every((earlier) => excuses(earlier, repeat, kills, storeLosses)),
      );
    (excused ? redelivered : gradedTwice).push(submissionId);
  }
  return {
    gradedTwice: gradedTwice.sort((a, b) => a - b),
    redelivered: redelivered.sort((a, b) => a - b),
  };
}

function bySubmission(gradings: readonly Grading[]): Map<number, Grading[]> {
  const map = new Map<number, Grading[]>();
  for (const grading of gradings) {
    const list = map.get(grading.submissionId);
    if (list) list.push(grading);
    else map.set(grading.submissionId, [grading]);
  }
  return map;
}

/**
 * `earlier` failed, or never finished and, between its start and `repeat`'s, its process was
 * killed (then `repeat` ran elsewhere) or its job was lost with Redis.
 */
function excuses(
  earlier: Grading,
  repeat: Grading,
  kills: readonly ReplicaKill[],
  storeLosses: readonly StoreLoss[],
): boolean {
  if (earlier.outcome === 'failed') return true;
  if (earlier.outcome !== null) return false;
  const between = (atMs: number) => earlier.startedAtMs <= atMs && atMs < repeat.startedAtMs;
  if (storeLosses.some((loss) => between(loss.atMs))) return true;
  if (earlier.pid === repeat.pid) return false;
  return kills.some((kill) => kill.pid === earlier.pid && between(kill.atMs));
}

/**
 * Submissions with a result accepted by more than one connection but graded once: upstream
 * edx-submissions serves a pull whose lock expired again, with the same key, until a result
 * lands, so in the serial loop every connection that got it posts the one job's result, and
 * the LMS accepts each. Reported apart, not a fault of ours.
 *
 * @example
 * repeatsOfOneKey(lines, gradings); // [12]
 */
export function repeatsOfOneKey(lines: readonly EventLine[], gradings: readonly Grading[]) {
  const posts = new Map<number, number>();
  for (const { event, fields } of lines) {
    if (event !== 'result-accepted' || typeof fields.submissionId !== 'number') continue;
    posts.set(fields.submissionId, (posts.get(fields.submissionId) ?? 0) + 1);
  }
  const graded = new Map<number, number>();
  for (const { submissionId } of gradings) {
    graded.set(submissionId, (graded.get(submissionId) ?? 0) + 1);
  }
  return [...posts]
    .filter(([id, count]) => count > 1 && (graded.get(id) ?? 0) <= 1)
    .map(([id]) => id)
    .sort((a, b) => a - b);
}
