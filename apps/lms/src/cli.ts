import {
  commandList,
  dispatch,
  parseFlags,
  runAsProgram,
  runCli as runCommandLine,
  type Subcommand,
} from '@storm-lab/cli-kit';
import { groupCommand, userCommand } from './cli/accounts.ts';
import { type LmsCliIo, processIo, say } from './cli/command.ts';
import { seedCommand } from './cli/seed.ts';
import { ENV_HELP, migrateCommand, serveCommand } from './cli/serve.ts';
import { sessionsCommand } from './cli/sessions.ts';
import { EnvError } from './env.ts';
import { SessionStoreUnreachableError } from './sessions/factory.ts';

export type { LmsCliIo } from './cli/command.ts';

/** Every `pnpm lms` command, bound to `io`, and `help`, which lists them. */
function commands(io: LmsCliIo): Record<string, Subcommand> {
  const listed: Record<string, Subcommand> = {
    serve: serveCommand(io),
    migrate: migrateCommand(io),
    seed: seedCommand(io),
    user: userCommand(io),
    group: groupCommand(io),
    sessions: sessionsCommand(io),
  };
  const help = `Usage: pnpm lms <command> [options]

Commands:
${commandList(listed)}

Run "pnpm lms <command> --help" for a command's options.
${ENV_HELP}`;
  return {
    ...listed,
    help: {
      summary: 'this text',
      run(argv) {
        parseFlags(argv, { help: { type: 'boolean', short: 'h' } });
        say(io.out, help);
        return 0;
      },
    },
  };
}

/**
 * Runs one `pnpm lms` command and returns its exit code: 0; 2 for a mistake in the command
 * line (the message and where to read the command's help) or the environment; 1 when the
 * session store the LMS uses cannot be reached (printed); anything else is thrown. Tests call
 * it in process with their own environment and output.
 *
 * @example
 * const code = await runCli(['sessions', 'end', 'student4', '--all']); // "Ended 2 sessions of student4"
 */
export async function runCli(argv: string[], io: LmsCliIo = processIo()): Promise<number> {
  const all = commands(io);
  const [first] = argv;
  const named = first !== undefined && first !== 'help' && Object.hasOwn(all, first);
  try {
    return await runCommandLine(() => dispatch(argv, all, 'help', io), {
      help: named ? `pnpm lms ${first} --help` : 'pnpm lms --help',
      io,
    });
  } catch (error) {
    if (error instanceof SessionStoreUnreachableError) {
      say(io.err, `error: ${error.message}`);
      return 1;
    }
    if (!(error instanceof EnvError)) throw error;
    say(io.err, `error: ${error.message}`);
    return 2;
  }
}

await runAsProgram(import.meta.url, runCli, { name: 'pnpm lms' });
