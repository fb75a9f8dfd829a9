import { isIPv4 } from 'node:net';
import {
  type CliIo,
  type FlagSpec,
  parseFlags,
  type Subcommand,
  UsageError,
} from '@storm-lab/cli-kit';
import { usernameProblem } from '../auth/username.ts';
import { type LmsConfig, parseEnv } from '../env.ts';

/** Where a command writes and what it reads: the process's own by default. */
export interface LmsCliIo extends CliIo {
  env: Record<string, string | undefined>;
  cwd: string;
}

export function processIo(): LmsCliIo {
  return { env: process.env, cwd: process.cwd(), out: process.stdout, err: process.stderr };
}

/** Writes one line. */
export function say(stream: NodeJS.WritableStream, text: string): void {
  stream.write(`${text}\n`);
}

const HELP_FLAG = { help: { type: 'boolean', short: 'h' } } as const;

type Parsed<O extends FlagSpec> = ReturnType<typeof parseFlags<O & typeof HELP_FLAG>>;

/** One `pnpm lms` command, before it is bound to where it writes. */
export interface LmsCommand<O extends FlagSpec> {
  /** One line for `pnpm lms --help`. */
  summary: string;
  /** What `pnpm lms COMMAND --help` prints. */
  help: string;
  flags: O;
  /** Whether the command takes words after its name (`user add NAME`). */
  positionals?: boolean;
  /** Runs with the flags parsed and the environment read; a `UsageError` is a mistake. */
  run(parsed: Parsed<O>, config: LmsConfig, io: LmsCliIo): Promise<void> | void;
}

/**
 * Binds a command to `io`: `--help` (or `-h`) prints its help, before the environment is read,
 * so the help shows whatever the environment holds; otherwise it parses the environment and runs.
 *
 * @example
 * const migrate = bindCommand(io, { summary: '…', help: '…', flags: {}, run: (_, config) => … });
 * await migrate.run(['--help'], io); // prints the help, returns 0
 */
export function bindCommand<const O extends FlagSpec>(
  io: LmsCliIo,
  command: LmsCommand<O>,
): Subcommand {
  return {
    summary: command.summary,
    async run(argv) {
      const flags = { ...command.flags, ...HELP_FLAG };
      const parsed = parseFlags(argv, flags, { positionals: command.positionals ?? false });
      if ((parsed.values as { help?: boolean }).help) {
        say(io.out, command.help);
        return 0;
      }
      await command.run(parsed as Parsed<O>, parseEnv(io.env, io.cwd), io);
      return 0;
    },
  };
}

/** Whether HOST only listens on this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare === '::1') return true;
  const v4 = bare.startsWith('::ffff:') ? bare.slice('::ffff:'.length) : bare;
  return isIPv4(v4) && v4.startsWith('127.');
}

/** A username Django would refuse is a mistake in the command line (see usernameProblem). */
export function checkUsername(where: string, username: string): void {
  const problem = usernameProblem(username);
  if (problem) throw new UsageError(`${where}: username ${JSON.stringify(username)} ${problem}`);
}
