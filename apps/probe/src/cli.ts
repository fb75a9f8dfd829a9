import { type CliIo, processIo, runAsProgram, runCli } from '@storm-lab/cli-kit';
import { HELP, isLoopback, parseCli } from './args.ts';
import { readPassword } from './password.ts';
import { type ProbeFigures, ProbeLoginRefusedError, type ProbeReport, runProbe } from './probe.ts';

function liveLine(figures: ProbeFigures, durationMs: number): string {
  const secs = (ms: number) => `${Math.round(ms / 1000)}s`;
  return (
    `probe ${secs(figures.elapsedMs)}/${secs(durationMs)}` +
    `  connections ${figures.connectionsAlive}/${figures.connections}` +
    `  logins ${figures.logins}  403s ${figures.forbidden}` +
    `  give-ups ${figures.reloginGiveups}  timeouts ${figures.loginTimeouts + figures.pollTimeouts}`
  );
}

function summary(report: ProbeReport): string {
  const timeouts = `${report.loginTimeouts} at login, ${report.pollTimeouts} polling`;
  const latency = report.loginLatencyMs;
  const lines = [
    `${report.verdict}  ${report.username} at ${report.target}, ${report.connections} connections, ${report.durationSeconds} s`,
    `  logins ${report.logins} (${report.connections} would be healthy), 403s ${report.forbidden}, re-login give-ups ${report.reloginGiveups}`,
    `  timeouts ${timeouts}; connections alive at the end ${report.connectionsAlive}/${report.connections}`,
    `  login latency p50 ${latency.p50 ?? '-'} ms, p95 ${latency.p95 ?? '-'} ms; polls ${report.polls} on queue ${report.queue}`,
  ];
  if (report.connectionsAlive < report.connections) {
    lines.push(
      `  ${report.connections - report.connectionsAlive} connection(s) died on a login timeout: upstream's Manager would have exited the whole replica.`,
    );
  }
  if (report.verdict === 'INCONCLUSIVE') {
    lines.push(
      `  fewer than two connections got to poll, so none could evict another; a longer --request-timeout lets slow logins finish (upstream's default is 1 s).`,
    );
  }
  if (report.suggestion) lines.push(`  cure: ${report.suggestion}`);
  return lines.join('\n');
}

/** Where the probe writes, and the environment it reads PROBE_PASSWORD from. */
export interface ProbeCliIo extends CliIo {
  env: Record<string, string | undefined>;
}

async function probe(argv: readonly string[], io: ProbeCliIo): Promise<number> {
  const options = parseCli(argv);
  if (options === 'help') {
    io.out.write(`${HELP}\n`);
    return 0;
  }
  const remote = !isLoopback(options.lmsUrl);
  if (remote && !options.yes) {
    io.err.write(
      `pnpm probe: ${options.lmsUrl.host} is not on this machine; the probe logs in ${options.connections} times as ${options.username} and may evict that account's live sessions. Add --yes to go ahead.\n`,
    );
    return 2;
  }
  const password = await readPassword(io.env.PROBE_PASSWORD, options.username);
  if (password === null) {
    io.err.write('pnpm probe: set PROBE_PASSWORD, or run it on a terminal to be asked\n');
    return 2;
  }
  const tty = Boolean((io.err as { isTTY?: boolean }).isTTY);
  let lastPlainMs = 0;
  const progress = (figures: ProbeFigures) => {
    const line = liveLine(figures, options.durationMs);
    if (tty) io.err.write(`\r\x1b[2K${line}`);
    else if (figures.elapsedMs - lastPlainMs >= 5000) {
      lastPlainMs = figures.elapsedMs;
      io.err.write(`${line}\n`);
    }
  };
  // Ctrl-C ends the probe early; the report covers what ran.
  const interrupted = new AbortController();
  process.once('SIGINT', () => interrupted.abort());
  let report: ProbeReport;
  try {
    report = await runProbe(
      {
        lmsUrl: options.lmsUrl.href.replace(/\/+$/, ''),
        username: options.username,
        password,
        connections: options.connections,
        durationMs: options.durationMs,
        requestTimeoutMs: options.requestTimeoutMs,
        pollIntervalMs: options.pollIntervalMs,
        loginPollIntervalMs: options.loginPollIntervalMs,
        rateBound: remote,
        signal: interrupted.signal,
      },
      progress,
    );
  } catch (error) {
    if (tty) io.err.write('\n');
    if (!(error instanceof ProbeLoginRefusedError)) throw error;
    io.err.write(`pnpm probe: ${error.message}\n`);
    return 2;
  }
  if (tty) io.err.write('\n');
  if (report.pulledSubmission) {
    io.err.write(
      `pnpm probe: STOPPED: the LMS served a submission on queue ${report.queue} (header ${report.pulledSubmission.header ?? 'unreadable'}). The probe posted nothing; the LMS serves it again when its lock expires.\n`,
    );
  }
  io.out.write(`${options.json ? JSON.stringify(report) : summary(report)}\n`);
  if (report.pulledSubmission) return 3;
  return { HEALTHY: 0, STORM: 1, INCONCLUSIVE: 4 }[report.verdict];
}

/**
 * Runs `pnpm probe ARGS` and returns its exit status (see HELP); a mistake in the command line
 * is printed and returns 2. Never exits the process.
 *
 * @example
 * const status = await main(['--lms-url', url, '--username', 'xqueue_svc', '--json']);
 */
export function main(
  argv: readonly string[],
  io: ProbeCliIo = { ...processIo, env: process.env },
): Promise<number> {
  return runCli(() => probe(argv, io), { help: 'pnpm probe --help', io });
}

// A crash exits 2, not 1: 1 is the STORM verdict.
await runAsProgram(import.meta.url, (argv) => main(argv), { name: 'pnpm probe', crashStatus: 2 });
