import { describe, expect, it } from 'vitest';
import { submissionsGradedTwice } from './graded-twice.ts';

const post = (submissionId: number, pid: number, atMs: number) => ({ submissionId, pid, atMs });
const kill = (pid: number, atMs: number) => ({ pid, atMs });

describe('submissionsGradedTwice', () => {
  it('counts none when each submission has one accepted result', () => {
    expect(
      submissionsGradedTwice([post(1, 100, 10), post(2, 100, 20), post(3, 200, 30)], []),
    ).toEqual([]);
  });

  it('counts two accepted results from one process, killed or not', () => {
    const posts = [post(1, 100, 10), post(1, 100, 20)];
    expect(submissionsGradedTwice(posts, [])).toEqual([1]);
    expect(submissionsGradedTwice(posts, [kill(100, 15)])).toEqual([1]);
  });

  it('counts two accepted results from two processes when neither was killed', () => {
    expect(submissionsGradedTwice([post(4, 100, 10), post(4, 200, 3_000)], [])).toEqual([4]);
  });

  it('excuses a repeat after the first poster was SIGKILLed between the two posts', () => {
    const posts = [post(5, 200, 3_000), post(5, 100, 10)]; // in any order
    expect(submissionsGradedTwice(posts, [kill(100, 10)])).toEqual([]);
    expect(submissionsGradedTwice(posts, [kill(100, 50)])).toEqual([]);
  });

  it('counts the repeat when the kill was not of the first poster or not between the posts', () => {
    const posts = [post(6, 100, 1_000), post(6, 200, 3_000)];
    expect(submissionsGradedTwice(posts, [kill(200, 2_000)]), 'the second poster').toEqual([6]);
    expect(submissionsGradedTwice(posts, [kill(100, 500)]), 'before the first post').toEqual([6]);
    expect(submissionsGradedTwice(posts, [kill(100, 3_000)]), 'at the second post').toEqual([6]);
    expect(submissionsGradedTwice(posts, [kill(100, 4_000)]), 'after the second post').toEqual([6]);
  });

  it('excuses a chain of redeliveries only when every earlier poster was killed in turn', () => {
    const posts = [post(7, 100, 10), post(7, 200, 3_000), post(7, 300, 6_000)];
    expect(submissionsGradedTwice(posts, [kill(100, 20), kill(200, 3_010)])).toEqual([]);
    expect(submissionsGradedTwice(posts, [kill(100, 20)])).toEqual([7]);
    expect(submissionsGradedTwice(posts, [kill(200, 3_010)])).toEqual([7]);
  });

  it('lists each submission once, in order, among others graded once', () => {
    const posts = [
      post(9, 100, 10),
      post(8, 100, 11),
      post(9, 200, 20),
      post(8, 100, 21),
      post(9, 300, 30),
      post(3, 300, 31),
    ];
    expect(submissionsGradedTwice(posts, [])).toEqual([8, 9]);
  });
});
