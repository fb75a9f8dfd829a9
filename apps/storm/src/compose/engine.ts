import { spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { processExists } from '@storm-lab/harness';
import { installed, must, run } from './command.ts';

/** Prints one line of the check's progress. */
export type Say = (line: string) => void;

/** Raised for what the operator has to do something about (install, re-run with a flag). */
export class CheckError extends Error {}

const isRoot = () => process.getuid?.() === 0;

/** Whether a container engine answers the docker client. */
export async function engineRunning(): Promise<boolean> {
  const answer = await run('docker', ['version', '--format', '{{.Server.Version}}'], {
    timeoutMs: 15_000,
  });
  return answer.code === 0 && answer.stdout.trim() !== '';
}

export interface ToolOptions {
  install: boolean;
  localBaseImages: boolean;
  say: Say;
}

/**
 * Makes sure docker, docker-compose (the standalone 1.x that Debian ships: Debian has no
 * `docker compose` plugin) and, for stand-in base images, debootstrap are there. With
 * `install`, installs what is missing from Debian's packages and says so; otherwise names the
 * packages to install.
 */
export async function ensureTools(options: ToolOptions): Promise<void> {
  const missing: string[] = [];
  if (!(await installed('docker-compose'))) missing.push('docker-compose');
  const engine = (await installed('dockerd')) || (await engineRunning());
  if (!engine || !(await installed('docker'))) missing.push('docker.io');
  if (options.localBaseImages && !(await installed('debootstrap'))) missing.push('debootstrap');
  if (missing.length === 0) return;
  const command = `apt-get install -y ${missing.join(' ')}`;
  if (!options.install)
    throw new CheckError(
      `Missing: ${missing.join(', ')}. Install Debian's packages (${command}) or re-run with --install.`,
    );
  if (!isRoot()) throw new CheckError(`--install needs root (it runs ${command}).`);
  // nft lets the clean-up delete the firewall tables the engine creates (see restoreNetwork).
  const packages = (await installed('nft')) ? missing : [...missing, 'nftables'];
  options.say(`--install: installing Debian's ${packages.join(', ')} (apt-get)...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await must('apt-get', ['update', '-qq'], { env, timeoutMs: 300_000 });
  await must('apt-get', ['install', '-y', '-qq', ...packages], { env, timeoutMs: 900_000 });
}

/** What the host's network looked like before the engine started, to put it back after. */
interface HostNetwork {
  bridge: boolean;
  ipForward: string | null;
  /** `iptables-save` before, or null where iptables is not installed. */
  iptables: string | null;
}

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

async function hostNetwork(): Promise<HostNetwork> {
  const bridge = (await run('ip', ['link', 'show', 'docker0'])).code === 0;
  const ipForward = existsSync(IP_FORWARD) ? (await readFile(IP_FORWARD, 'utf8')).trim() : null;
  const saved = (await installed('iptables-save')) ? await run('iptables-save', []) : null;
  return { bridge, ipForward, iptables: saved?.code === 0 ? saved.stdout : null };
}

const tablesOf = (saved: string) =>
  new Set([...saved.matchAll(/^\*(\w+)$/gm)].map((m) => m[1] ?? ''));

/**
 * Undoes what the engine added to the host: the docker0 bridge, the firewall tables and chains
 * (tables that were there before get their saved rules back) and the ip_forward switch.
 */
async function restoreNetwork(before: HostNetwork, say: Say): Promise<void> {
  const now = await hostNetwork();
  const undone: string[] = [];
  if (!before.bridge && now.bridge) {
    await run('ip', ['link', 'delete', 'docker0']);
    undone.push('bridge docker0');
  }
  if (before.iptables !== null && now.iptables !== null) {
    const had = tablesOf(before.iptables);
    for (const table of tablesOf(now.iptables)) {
      if (had.has(table)) continue;
      await run('iptables', ['-t', table, '-F']);
      await run('iptables', ['-t', table, '-X']);
      if (table === 'filter')
        for (const chain of ['INPUT', 'FORWARD', 'OUTPUT'])
          await run('iptables', ['-t', table, '-P', chain, 'ACCEPT']);
      if (await installed('nft')) await run('nft', ['delete', 'table', 'ip', table]);
      undone.push(`firewall table ${table}`);
    }
    if (had.size > 0) {
      await run('iptables-restore', [], { input: before.iptables });
      undone.push(`firewall rules of ${[...had].join(', ')} restored`);
    }
  }
  if (before.ipForward !== null && now.ipForward !== before.ipForward) {
    await writeFile(IP_FORWARD, `${before.ipForward}\n`);
    undone.push(`net.ipv4.ip_forward back to ${before.ipForward}`);
  }
  if (undone.length > 0) say(`Host network put back: ${undone.join('; ')}.`);
}

async function stopPid(pid: number): Promise<void> {
  if (!processExists(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 30_000;
  while (processExists(pid) && Date.now() < deadline) await sleep(200);
  if (processExists(pid)) process.kill(pid, 'SIGKILL');
}

/** The engine this check uses, and how to stop it when the check started it. */
export interface Engine {
  /** True when the check started the engine (or its --install did); false: it was running. */
  owned: boolean;
  /** Stops an owned engine and undoes its network changes; does nothing otherwise. */
  stop(): Promise<void>;
}

const DOCKERD_PID = '/var/run/docker.pid';
const RUNTIME_DIR = '/run/docker';

/**
 * Uses the running engine, or starts `dockerd` when none answers (root only), logging to
 * `dir/dockerd.log`. `wasRunning` is whether an engine answered before the check installed
 * anything: an engine that the package's install started is the check's own too.
 */
export async function useEngine(dir: string, wasRunning: boolean, say: Say): Promise<Engine> {
  const runningNow = await engineRunning();
  if (wasRunning && runningNow) {
    say('Container engine: already running (left running at the end).');
    return { owned: false, stop: async () => undefined };
  }
  if (!isRoot())
    throw new CheckError('No container engine is running, and starting one needs root.');
  const network = await hostNetwork();
  const hadRuntimeDir = existsSync(RUNTIME_DIR);
  let pid: number;
  if (runningNow) {
    pid = Number(readFileSync(DOCKERD_PID, 'utf8').trim());
    say(`Container engine: started by the package install (pid ${pid}); stopped at the end.`);
  } else {
    const log = join(dir, 'dockerd.log');
    // Its own process group: Ctrl-C in the terminal must not stop the engine before the
    // clean-up has used it to remove the containers and images.
    const child = spawn('dockerd', [], {
      detached: true,
      stdio: ['ignore', openSync(log, 'a'), openSync(log, 'a')],
    });
    child.unref();
    let exited = false;
    child.on('exit', () => {
      exited = true;
    });
    pid = child.pid ?? 0;
    const deadline = Date.now() + 60_000;
    while (!(await engineRunning())) {
      if (exited || Date.now() > deadline) {
        const tail = readFileSync(log, 'utf8').trim().split('\n').slice(-8).join('\n');
        throw new CheckError(`dockerd did not start (log: ${log}):\n${tail}`);
      }
      await sleep(300);
    }
    say(`Container engine: started dockerd (pid ${pid}, log ${log}); stopped at the end.`);
  }
  return {
    owned: true,
    stop: async () => {
      await stopPid(pid);
      // dockerd leaves its runtime state (sockets of its containerd, empty task folders).
      if (!hadRuntimeDir) await rm(RUNTIME_DIR, { recursive: true, force: true });
      say(`Container engine stopped (dockerd pid ${pid}).`);
      await restoreNetwork(network, say);
    },
  };
}
