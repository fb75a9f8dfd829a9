/**
 * The project's command lines share this: one `UsageError`, flags parsed by node:util
 * `parseArgs` with its errors turned into usage errors, checked numbers, subcommands, and
 * `runCli`, which prints a usage error with a pointer to `--help` and returns exit status 2.
 * A CLI's `main` returns its status, so tests call it in process; only `runAsProgram`, the
 * bin entry, ends the process.
 */
import { realpathSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { type ParseArgsConfig, parseArgs } from 'node:util';

/** A command line that cannot run; the message names the flag and what it takes. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type FlagSpec = NonNullable<ParseArgsConfig['options']>;

/**
 * `parseArgs` in strict mode, its own errors (an unknown flag, a missing value) rethrown as
 * `UsageError`. Positionals are refused unless `positionals` is true.
 */
export function parseFlags<const O extends FlagSpec>(
  argv: readonly string[],
  options: O,
  { positionals = false }: { positionals?: boolean } = {},
) {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: positionals });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export interface NumberRule {
  min: number;
  max: number;
  /** Only whole numbers. */
  integer?: boolean;
  /** What the number counts, for the message: "seconds", "connections". */
  unit?: string;
}

/**
 * `--name`'s value as a number within `rule`, or `fallback` when the flag was not given.
 * An empty string, a non-number, a fraction where an integer is asked or a value out of range
 * is a `UsageError` that says what the flag takes and what it got.
 */
export function numberFlag(
  name: string,
  raw: string | undefined,
  fallback: number,
  rule: NumberRule,
): number;
export function numberFlag(
  name: string,
  raw: string | undefined,
  fallback: undefined,
  rule: NumberRule,
): number | undefined;
export function numberFlag(
  name: string,
  raw: string | undefined,
  fallback: number | undefined,
  rule: NumberRule,
): number | undefined {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (
    raw.trim() === '' ||
    !Number.isFinite(value) ||
    value < rule.min ||
    value > rule.max ||
    (rule.integer && !Number.isInteger(value))
  ) {
    const kind = rule.integer ? 'an integer' : 'a number';
    const of = rule.unit ? ` of ${rule.unit}` : '';
    throw new UsageError(
      `--${name} must be ${kind}${of} from ${rule.min} to ${rule.max} (got ${JSON.stringify(raw)})`,
    );
  }
  return value;
}

/** `--name`'s value, which must be one of `choices`; `fallback` when not given. */
export function choiceFlag<const C extends string>(
  name: string,
  raw: string | undefined,
  choices: readonly C[],
  fallback: C,
): C {
  if (raw === undefined) return fallback;
  if ((choices as readonly string[]).includes(raw)) return raw as C;
  throw new UsageError(
    `--${name} must be one of ${choices.join(', ')} (got ${JSON.stringify(raw)})`,
  );
}

/** Where a CLI writes; tests pass their own. */
export interface CliIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export const processIo: CliIo = { out: process.stdout, err: process.stderr };

/** A {@link CliIo} that keeps what is written to it, read as text at any time. */
export interface CapturedIo extends CliIo {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * An io that keeps what a CLI writes, for running its `main` in process (the tests do). Read
 * the text from the io itself: a copy (`{ ...io, env }`) holds the text as it was when copied.
 *
 * @example
 * const io = capturedIo();
 * const status = await main(['--bogus'], io);
 * io.stderr; // "Unknown option '--bogus' (see pnpm x --help)\n"
 */
export function capturedIo(): CapturedIo {
  const out = new PassThrough();
  const err = new PassThrough();
  const text = { out: '', err: '' };
  out.on('data', (chunk) => {
    text.out += chunk;
  });
  err.on('data', (chunk) => {
    text.err += chunk;
  });
  return {
    out,
    err,
    get stdout() {
      return text.out;
    },
    get stderr() {
      return text.err;
    },
  };
}

/** One subcommand: its one-line summary (for the parent's help) and what runs it. */
export interface Subcommand {
  summary: string;
  run: (argv: string[], io: CliIo) => Promise<number> | number;
}

/**
 * Picks the subcommand named by `argv[0]`. When the first word is a flag or absent,
 * `fallback` runs with the whole argv (so `pnpm storm --compare a,b` keeps working beside
 * `pnpm storm compare a,b`). An unknown word is a `UsageError` listing the subcommands.
 */
export function dispatch(
  argv: readonly string[],
  commands: Readonly<Record<string, Subcommand>>,
  fallback: string,
  io: CliIo,
): Promise<number> | number {
  const [first, ...rest] = argv;
  if (first === undefined || first.startsWith('-')) {
    return commands[fallback]!.run([...argv], io);
  }
  const command = Object.hasOwn(commands, first) ? commands[first] : undefined;
  if (!command) {
    throw new UsageError(
      `unknown command ${JSON.stringify(first)}; the commands are ${Object.keys(commands).join(', ')}`,
    );
  }
  return command.run(rest, io);
}

/** The help's list of subcommands, aligned. */
export function commandList(commands: Readonly<Record<string, Subcommand>>): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  return Object.entries(commands)
    .map(([name, { summary }]) => `  ${name.padEnd(width)}  ${summary}`)
    .join('\n');
}

/**
 * Runs a CLI's `main` and returns its exit status: a `UsageError` becomes its message and
 * "(see `<help>`)" on stderr and status 2; any other error is rethrown for the caller.
 */
export async function runCli(
  main: (io: CliIo) => Promise<number> | number,
  { help, io = processIo }: { help: string; io?: CliIo },
): Promise<number> {
  try {
    return await main(io);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err.write(`${error.message} (see ${help})\n`);
    return 2;
  }
}

/** True when `moduleUrl` (a module's `import.meta.url`) is the script node was started with. */
export function isProgram(moduleUrl: string, entry = process.argv[1]): boolean {
  if (!entry) return false;
  try {
    return moduleUrl === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

export interface ProgramOptions {
  /** Prefixes a crash's stack on stderr: `storm`, `pnpm probe`. */
  name: string;
  /** The status of a crash (an error other than a usage error); 1 unless 1 means something. */
  crashStatus?: number;
  /**
   * End the process with the status even while handles are still open (a child's pipe, a
   * Redis socket). Otherwise the status is set and node ends when its work is done.
   */
  forceExit?: boolean;
}

/**
 * The bin entry of a CLI: when the module at `moduleUrl` is the program, runs `main` on the
 * command line's arguments and ends with its status; a crash prints its stack and exits with
 * `crashStatus` at once (what was running is in an unknown state). Does nothing when the
 * module is imported (by a test, or another CLI).
 *
 * @example
 * await runAsProgram(import.meta.url, main, { name: 'storm', forceExit: true });
 */
export async function runAsProgram(
  moduleUrl: string,
  main: (argv: string[]) => Promise<number> | number,
  { name, crashStatus = 1, forceExit = false }: ProgramOptions,
): Promise<void> {
  if (!isProgram(moduleUrl)) return;
  let status: number;
  try {
    status = await main(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${name}: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(crashStatus);
  }
  if (forceExit) process.exit(status);
  process.exitCode = status;
}
