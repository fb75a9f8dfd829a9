import { readdirSync, readFileSync } from 'node:fs';

/**
 * Linux's run queue, read from /proc: how many threads are runnable now, and which of them are
 * the lab LMS's hashing threads. Sampled while a real `pnpm storm` runs, it says how much of the
 * cores the LMS's PBKDF2 threads had to share with the rest of the lab (watchers, Redis, the
 * students, the runner, the LMS's own event loop), without timing anything, so the sampler does
 * not add a hash of its own to what it measures.
 */

/** Threads runnable on the whole machine now (`procs_running` in /proc/stat). */
export function runnableThreads(): number {
  const match = /^procs_running (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
  if (!match) throw new Error('/proc/stat has no procs_running line (is this Linux?)');
  return Number(match[1]);
}

/** A process's runnable threads: its main thread (0 or 1) and the others. 0 and 0 once gone. */
export function runnableOf(pid: number): { main: number; others: number } {
  let main = 0;
  let others = 0;
  for (const task of tasksOf(pid)) {
    if (stateOf(`/proc/${pid}/task/${task}/stat`) !== 'R') continue;
    if (task === String(pid)) main = 1;
    else others += 1;
  }
  return { main, others };
}

function tasksOf(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/task`);
  } catch {
    return []; // ended meanwhile
  }
}

/** The state letter of a /proc stat file (after the command name, which may hold spaces). */
function stateOf(file: string): string | null {
  try {
    const text = readFileSync(file, 'utf8');
    return text.charAt(text.lastIndexOf(')') + 2) || null;
  } catch {
    return null;
  }
}

/** Every process now: its parent and its command line's words. */
function processes(): { pid: number; ppid: number; argv: string[] }[] {
  const all: { pid: number; ppid: number; argv: string[] }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      all.push({ pid: Number(entry), ppid, argv });
    } catch {
      // ended meanwhile
    }
  }
  return all;
}

/**
 * The processes under `root` (its descendants) whose command line matches `is`: the lab's LMS
 * is `node --import tsx src/cli.ts serve` (the harness's `startLms`).
 */
export function descendantsOf(
  root: number,
  is: (argv: readonly string[]) => boolean = isLmsServer,
): number[] {
  const all = processes();
  const children = new Map<number, number[]>();
  for (const { pid, ppid } of all) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  const under = new Set<number>();
  const stack = [...(children.get(root) ?? [])];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    if (under.has(pid)) continue;
    under.add(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return all.filter(({ pid, argv }) => under.has(pid) && is(argv)).map(({ pid }) => pid);
}

/** The lab LMS's serving process, as the harness starts it. */
export function isLmsServer(argv: readonly string[]): boolean {
  const cli = argv.indexOf('src/cli.ts');
  return cli >= 0 && argv[cli + 1] === 'serve';
}

/** What {@link RunQueueSampler} counted: histograms of the other runnable threads. */
export interface RunQueueCounts {
  intervalMs: number;
  /** Samples with at least one of the LMS's hashing threads runnable. */
  whileHashing: number[];
  /** Samples with none. */
  otherwise: number[];
}

/** How many samples `counts` holds (both histograms). */
export function samplesIn(counts: Pick<RunQueueCounts, 'whileHashing' | 'otherwise'>): number {
  return [...counts.whileHashing, ...counts.otherwise].reduce((sum, n) => sum + n, 0);
}

export interface RunQueueOptions {
  /** Whose LMS to watch: a process whose descendants include the LMS (re-read every 500 ms). */
  root?: number;
  /** Processes of the measurement itself, left out of the count (this process always is). */
  own?: () => readonly number[];
  /** Between samples, in ms (default 10). */
  intervalMs?: number;
}

/**
 * Samples the run queue every `intervalMs` until stopped: each sample is the machine's runnable
 * threads less this process's, `own` processes' and the LMS's hashing threads, counted under
 * whether any LMS hashing thread was runnable.
 */
export class RunQueueSampler {
  /** What was counted so far. */
  readonly counts: RunQueueCounts;
  private lms: number[] = [];
  private lmsReadAt = Number.NEGATIVE_INFINITY;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly options: RunQueueOptions = {}) {
    this.counts = { intervalMs: options.intervalMs ?? 10, whileHashing: [], otherwise: [] };
  }

  /** Samples taken so far. */
  get samples(): number {
    return samplesIn(this.counts);
  }

  /** Starts sampling (the first sample at once). */
  start(): void {
    this.tick();
  }

  /** Stops sampling; returns what was counted. */
  stop(): RunQueueCounts {
    clearTimeout(this.timer);
    this.timer = undefined;
    return this.counts;
  }

  /** Takes one sample now. */
  sample(): void {
    const { root, own } = this.options;
    if (root !== undefined && performance.now() - this.lmsReadAt >= 500) {
      this.lms = descendantsOf(root);
      this.lmsReadAt = performance.now();
    }
    let hashing = 0;
    for (const pid of this.lms) hashing += runnableOf(pid).others;
    let mine = 0;
    for (const pid of [process.pid, ...(own?.() ?? [])]) {
      const { main, others } = runnableOf(pid);
      mine += main + others;
    }
    const others = Math.max(0, runnableThreads() - hashing - mine);
    const histogram = hashing > 0 ? this.counts.whileHashing : this.counts.otherwise;
    while (histogram.length <= others) histogram.push(0);
    histogram[others] = (histogram[others] as number) + 1;
  }

  private tick(): void {
    this.sample();
    this.timer = setTimeout(() => this.tick(), this.counts.intervalMs);
  }
}
