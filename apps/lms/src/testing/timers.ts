/**
 * Runs a 10 ms timer over and over for `durationMs` and returns how late it fired at worst:
 * how long the event loop was kept from running anything else.
 *
 * @example
 * const [lag] = await Promise.all([worstTimerLag(500), somethingThatMustNotBlock()]);
 * expect(lag).toBeLessThan(100);
 */
export async function worstTimerLag(durationMs: number): Promise<number> {
  const end = performance.now() + durationMs;
  let worst = 0;
  while (performance.now() < end) {
    const start = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 10));
    worst = Math.max(worst, performance.now() - start - 10);
  }
  return worst;
}
