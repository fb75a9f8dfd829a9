import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';

/** What a finished command left behind. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the command's stdin, then closed. */
  input?: string;
  /** Kills the command (SIGKILL) after this long; the result then has code 124. */
  timeoutMs?: number;
  /** Appends stdout and stderr to this file instead of keeping them (long builds). */
  logFile?: string;
  /** Called with each chunk of output, e.g. to show the last build step. */
  onOutput?: (text: string) => void;
}

/** A command that ended other than with exit code 0, with the end of what it printed. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly result: CommandResult,
    readonly logFile?: string,
  ) {
    const tail = `${result.stderr}${result.stdout}`.trim().split('\n').slice(-12).join('\n');
    const where = logFile ? `\n(full output: ${logFile})` : '';
    super(`\`${command}\` exited with ${result.code}${tail ? `:\n${tail}` : ''}${where}`);
  }
}

/**
 * Runs a program without a shell and resolves with its exit code and output, whatever the code.
 * A program that is not installed resolves with code 127, as a shell would report it.
 *
 * @example
 * const { code } = await run('docker', ['version']);
 */
export function run(
  program: string,
  args: readonly string[],
  options: CommandOptions = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(program, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const log = options.logFile ? createWriteStream(options.logFile, { flags: 'a' }) : null;
    let stdout = '';
    let stderr = '';
    const take = (into: 'out' | 'err') => (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      options.onOutput?.(text);
      if (log) log.write(text);
      else if (into === 'out') stdout += text;
      else stderr += text;
    };
    child.stdout?.on('data', take('out'));
    child.stderr?.on('data', take('err'));
    if (options.input !== undefined) child.stdin?.end(options.input);
    let timedOut = false;
    const timer = options.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, options.timeoutMs)
      : null;
    const finish = (code: number, extra = '') => {
      if (timer) clearTimeout(timer);
      const done = () => resolve({ code, stdout, stderr: stderr + extra });
      if (log) log.end(done);
      else done();
    };
    child.on('error', (error: NodeJS.ErrnoException) =>
      finish(error.code === 'ENOENT' ? 127 : 1, String(error.message)),
    );
    child.on('close', (code, signal) => {
      if (timedOut) finish(124, `\ntimed out after ${options.timeoutMs} ms`);
      else finish(code ?? (signal ? 128 : 1));
    });
  });
}

/** {@link run}, but an exit code other than 0 throws a {@link CommandError}. */
export async function must(
  program: string,
  args: readonly string[],
  options: CommandOptions = {},
): Promise<CommandResult> {
  const result = await run(program, args, options);
  if (result.code !== 0)
    throw new CommandError([program, ...args].join(' '), result, options.logFile);
  return result;
}

/** Whether a program is on PATH (as `command -v` sees it). */
export async function installed(program: string): Promise<boolean> {
  if (!/^[\w.+-]+$/.test(program)) throw new Error(`not a program name: ${program}`);
  return (await run('sh', ['-c', `command -v ${program}`])).code === 0;
}
