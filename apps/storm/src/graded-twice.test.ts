import { describe, expect, it } from 'vitest';
import {
  countGradings,
  type EventLine,
  type Grading,
  gradingsOf,
  repeatsOfOneKey,
} from './graded-twice.ts';

const grading = (
  submissionId: number,
  pid: number,
  startedAtMs: number,
  outcome: string | null = 'correct',
): Grading => ({ submissionId, jobId: `sub-${submissionId}-k`, pid, startedAtMs, outcome });
const kill = (pid: number, atMs: number) => ({ pid, atMs });
const line = (
  event: string,
  pid: number,
  atMs: number,
  fields: Record<string, unknown>,
): EventLine => ({ event, pid, atMs, fields });

describe('gradingsOf', () => {
  it('pairs each finish with the latest open start of the same process and job', () => {
    const job = { submissionId: 7, jobId: 'sub-7-k' };
    const gradings = gradingsOf([
      line('grading-started', 100, 10, job),
      line('grading-started', 200, 11, job),
      line('result-accepted', 100, 12, job),
      line('grading-finished', 100, 13, { ...job, outcome: 'failed' }),
      line('grading-started', 100, 14, job),
      line('grading-finished', 100, 15, { ...job, outcome: 'correct' }),
      line('grading-started', 300, 16, { ...job, jobId: 'sub-7-other' }),
      line('grading-finished', 300, 17, { ...job, outcome: 'correct' }),
    ]);
    expect(gradings.map(({ pid, startedAtMs, outcome }) => [pid, startedAtMs, outcome])).toEqual([
      [100, 10, 'failed'],
      [200, 11, null],
      [100, 14, 'correct'],
      [300, 16, null],
    ]);
  });
});

describe('gradingsOf: a job lost with Redis and started again in the same process', () => {
  it('gives the finish to the later start, leaving the lost one unfinished', () => {
    const job = { submissionId: 207, jobId: 'sub-207-k' };
    const gradings = gradingsOf([
      line('grading-started', 100, 10, job),
      // Redis restarted empty: the job is gone; the LMS serves the pull again, the job is added
      // again with the same id, and the same process starts it.
      line('grading-started', 100, 30, job),
      line('grading-finished', 100, 31, { ...job, outcome: 'correct' }),
    ]);
    expect(gradings.map(({ startedAtMs, outcome }) => [startedAtMs, outcome])).toEqual([
      [10, null],
      [30, 'correct'],
    ]);
  });
});

describe('countGradings', () => {
  it('counts none when each submission was graded once', () => {
    const gradings = [grading(1, 100, 10), grading(2, 100, 20), grading(3, 200, 30)];
    expect(countGradings(gradings, [])).toEqual({ gradedTwice: [], redelivered: [] });
  });

  it('counts two gradings in one process, killed or not', () => {
    const gradings = [grading(1, 100, 10), grading(1, 100, 20)];
    expect(countGradings(gradings, []).gradedTwice).toEqual([1]);
    expect(countGradings(gradings, [kill(100, 15)]).gradedTwice).toEqual([1]);
    // Unfinished, then again in the same process: a kill between cannot excuse it (a killed
    // process grades nothing more; the pid graded on, so the kill was not of that grader).
    const unfinished = [grading(1, 100, 10, null), grading(1, 100, 20)];
    expect(countGradings(unfinished, [kill(100, 15)]).gradedTwice).toEqual([1]);
  });

  it('counts a repeat while the first grader was alive, even one that was later killed', () => {
    // A lapsed BullMQ lock: 200 grades the job while 100 still grades it.
    const unfinished = [grading(4, 100, 10, null), grading(4, 200, 3_000)];
    expect(countGradings(unfinished, []).gradedTwice).toEqual([4]);
    expect(countGradings(unfinished, [kill(100, 4_000)]).gradedTwice).toEqual([4]);
    expect(countGradings(unfinished, [kill(100, 3_000)]).gradedTwice, 'at the start').toEqual([4]);
    expect(countGradings(unfinished, [kill(200, 2_000)]).gradedTwice, 'other pid').toEqual([4]);
  });

  it('counts a repeat after a finished grading, even when its grader was killed after finishing', () => {
    const gradings = [grading(5, 100, 10, 'correct'), grading(5, 200, 3_000)];
    expect(countGradings(gradings, [kill(100, 50)])).toEqual({ gradedTwice: [5], redelivered: [] });
  });

  it('excuses a repeat after the first grader was SIGKILLed before it printed its finish', () => {
    const gradings = [grading(6, 200, 3_000), grading(6, 100, 10, null)]; // in any order
    expect(countGradings(gradings, [kill(100, 10)])).toEqual({ gradedTwice: [], redelivered: [6] });
    expect(countGradings(gradings, [kill(100, 2_999)]).redelivered).toEqual([6]);
  });

  it('excuses a repeat after a grading lost unfinished when Redis restarted empty', () => {
    const loss = (atMs: number) => ({ atMs });
    // In the same process or another: the job and its lock were gone, the LMS served it again.
    const same = [grading(9, 100, 10, null), grading(9, 100, 3_000)];
    const other = [grading(9, 100, 10, null), grading(9, 200, 3_000)];
    expect(countGradings(same, [], [loss(50)])).toEqual({ gradedTwice: [], redelivered: [9] });
    expect(countGradings(other, [], [loss(50)]).redelivered).toEqual([9]);
    // Without the loss, or with it only once the repeat had started, it is graded twice.
    expect(countGradings(same, []).gradedTwice).toEqual([9]);
    expect(countGradings(same, [], [loss(3_000)]).gradedTwice).toEqual([9]);
    expect(countGradings(same, [], [loss(5)]).gradedTwice).toEqual([9]);
    // A finished grading is not excused by a loss: its job was done.
    const finished = [grading(9, 100, 10), grading(9, 100, 3_000)];
    expect(countGradings(finished, [], [loss(50)]).gradedTwice).toEqual([9]);
  });

  it('excuses a retry after a grading that failed', () => {
    const gradings = [grading(7, 100, 10, 'failed'), grading(7, 100, 500)];
    expect(countGradings(gradings, [])).toEqual({ gradedTwice: [], redelivered: [7] });
  });

  it('excuses a chain of redeliveries only when every earlier grader was killed in turn', () => {
    const chain = [grading(8, 100, 10, null), grading(8, 200, 3_000, null), grading(8, 300, 6_000)];
    expect(countGradings(chain, [kill(100, 20), kill(200, 3_010)]).redelivered).toEqual([8]);
    expect(countGradings(chain, [kill(100, 20)]).gradedTwice).toEqual([8]);
    expect(countGradings(chain, [kill(200, 3_010)]).gradedTwice).toEqual([8]);
  });

  it('lists each submission once, in order, among others graded once', () => {
    const gradings = [
      grading(9, 100, 10),
      grading(8, 100, 11),
      grading(9, 200, 20),
      grading(8, 100, 21),
      grading(9, 300, 30),
      grading(3, 300, 31),
    ];
    expect(countGradings(gradings, []).gradedTwice).toEqual([8, 9]);
  });
});

describe('repeatsOfOneKey', () => {
  it('lists submissions posted by several connections for one grading, apart from regradings', () => {
    const posted = (id: number, pid: number) =>
      line('result-accepted', pid, 0, { submissionId: id });
    const lines = [posted(1, 100), posted(1, 200), posted(2, 100), posted(3, 100), posted(3, 100)];
    const gradings = [
      grading(1, 100, 0),
      grading(2, 100, 0),
      grading(3, 100, 0),
      grading(3, 200, 5),
    ];
    expect(repeatsOfOneKey(lines, gradings)).toEqual([1]);
  });
});
