import { readdir, readFile } from 'node:fs/promises';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

async function parentOf(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[1]);
  } catch {
    return null;
  }
}

/**
 * The deepest descendant of `pid` (tsx runs the program in a child node process, so the pid we
 * spawned is a wrapper and the server is its child).
 */
export async function serverPid(pid: number): Promise<number> {
  const entries = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry)).map(Number);
  let current = pid;
  for (;;) {
    let child: number | undefined;
    for (const candidate of entries) {
      if ((await parentOf(candidate)) === current) {
        child = candidate;
        break;
      }
    }
    if (child === undefined) return current;
    current = child;
  }
}

/** `pid` and every process below it (the LMS's primary and its cluster workers, say). */
export async function processTree(pid: number): Promise<number[]> {
  const entries = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry)).map(Number);
  const parents = new Map<number, number | null>();
  for (const candidate of entries) parents.set(candidate, await parentOf(candidate));
  const tree = [pid];
  for (let index = 0; index < tree.length; index++) {
    for (const [candidate, parent] of parents) if (parent === tree[index]) tree.push(candidate);
  }
  return tree;
}

/** CPU seconds used so far by `pid` and every process below it (a process gone since is 0). */
export async function treeCpuSeconds(pid: number): Promise<number> {
  let total = 0;
  for (const member of await processTree(pid)) total += await cpuSeconds(member).catch(() => 0);
  return total;
}

/** CPU seconds (user + system) a process has used so far. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the command name.
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Resident memory of a process in megabytes. */
export async function residentMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}
