import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';

/** Uniform in [0, 1), from a seeded generator: the same seed gives the same sequence. */
export type Random = () => number;

/**
 * A seeded source of chance (xoroshiro128+). `fork` gives an independent stream for one part of
 * the world, so that adding a draw in one part never shifts another part's sequence.
 *
 * @example
 * const random = seededRandom(42);
 * random(); // 0.7579...
 * const network = random.fork('network');
 */
export function seededRandom(seed: number): Random & { fork(label: string): Random } {
  const generator = xoroshiro128plus(seed | 0);
  const next = (() => uniformFloat64(generator)) as Random & { fork(label: string): Random };
  next.fork = (label: string) => seededRandom(hashLabel(seed, label));
  return next;
}

// FNV-1a of the label, mixed with the seed: stable across runs and platforms.
function hashLabel(seed: number, label: string): number {
  let hash = 0x811c9dc5 ^ (seed | 0);
  for (let index = 0; index < label.length; index++) {
    hash ^= label.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash | 0;
}
