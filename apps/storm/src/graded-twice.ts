/** A put_result the LMS answered with success, as a replica's `result-accepted` event line. */
export interface AcceptedResult {
  submissionId: number;
  /** The process (replica incarnation) that posted it. */
  pid: number;
  /** When the event line was read; every line of a process is read before its kill is noted. */
  atMs: number;
}

/** A SIGKILL the run sent to a replica: its pid, and when its last output had been read. */
export interface ReplicaKill {
  pid: number;
  atMs: number;
}

/**
 * The submissions graded twice, counted where grading happens: a submission with two or more
 * accepted results is graded twice, UNLESS every earlier result came from a different process
 * than the next one and the run SIGKILLed that earlier process after its post and before the
 * next post. That is the one repeat at-least-once delivery allows: the killed replica posted
 * but never marked its BullMQ job done, so the job was delivered again, another replica graded
 * it and posted again, and the LMS answered that repeat with success. Two accepted results from
 * the same process are always graded twice; so is a second result after a process that was not
 * killed in between (a lapsed job lock, a lost Redis job served again by the LMS).
 *
 * The LMS cannot tell: it stores the first result and answers a repeat with the right key with
 * success without counting it. A pid reused by a later process within one run is not told
 * apart (the kernel hands pids out in order, so not within a run's few hundred processes).
 *
 * @example
 * submissionsGradedTwice(
 *   [{ submissionId: 7, pid: 101, atMs: 1_000 }, { submissionId: 7, pid: 102, atMs: 4_000 }],
 *   [{ pid: 101, atMs: 1_050 }],
 * ); // [] : 101 was killed before its job was marked done, 102 graded the redelivered job
 */
export function submissionsGradedTwice(
  accepted: readonly AcceptedResult[],
  kills: readonly ReplicaKill[],
): number[] {
  const twice: number[] = [];
  for (const [submissionId, posts] of postsBySubmission(accepted)) {
    const inOrder = [...posts].sort((a, b) => a.atMs - b.atMs);
    const redelivered = inOrder
      .slice(0, -1)
      .every((post, index) => killedBetween(post, inOrder[index + 1]!, kills));
    if (!redelivered) twice.push(submissionId);
  }
  return twice.sort((a, b) => a - b);
}

function postsBySubmission(accepted: readonly AcceptedResult[]): Map<number, AcceptedResult[]> {
  const bySubmission = new Map<number, AcceptedResult[]>();
  for (const post of accepted) {
    const posts = bySubmission.get(post.submissionId);
    if (posts) posts.push(post);
    else bySubmission.set(post.submissionId, [post]);
  }
  return bySubmission;
}

/** `post`'s process differs from `next`'s and was SIGKILLed after `post`, before `next`. */
function killedBetween(
  post: AcceptedResult,
  next: AcceptedResult,
  kills: readonly ReplicaKill[],
): boolean {
  if (post.pid === next.pid) return false;
  return kills.some(
    (kill) => kill.pid === post.pid && post.atMs <= kill.atMs && kill.atMs < next.atMs,
  );
}
