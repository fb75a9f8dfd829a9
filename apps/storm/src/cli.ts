import {
  type CliIo,
  commandList,
  dispatch,
  processIo,
  runAsProgram,
  runCli,
  type Subcommand,
  UsageError,
} from '@storm-lab/cli-kit';
import { CHAOS_FLAGS, chaos } from './cli/chaos.ts';
import { COMPARE_FLAGS, COMPARE_HELP, compare } from './cli/compare.ts';
import { RACE_FLAGS, race } from './cli/race.ts';
import { composeCheck } from './compose-check.ts';

/** `pnpm storm`'s commands; `compare` runs when the first word is a flag or absent. */
export const COMMANDS: Readonly<Record<string, Subcommand>> = {
  compare,
  chaos,
  race,
  'compose-check': composeCheck,
};

const FLAGS_OF: Readonly<Record<string, object>> = {
  compare: COMPARE_FLAGS,
  chaos: CHAOS_FLAGS,
  race: RACE_FLAGS,
};

export const HELP = `pnpm storm: reproduce the single-login storm and its cure side by side

Usage:
  pnpm storm [COMMAND] [options]      COMMAND is compare unless named
  pnpm storm COMMAND --help           the command's own options

Commands:
${commandList(COMMANDS)}

The commands before they had names still work: pnpm storm --scenario chaos runs chaos and
pnpm storm --race runs race, each with its own options.

${COMPARE_HELP}`;

/**
 * The command line as it was before the commands had names: `--race` ran the race and
 * `--scenario chaos` the chaos run. Returns the argv with its command named.
 *
 * @example
 * named(['--scenario', 'chaos', '--seed', '7']); // ['chaos', '--seed', '7']
 */
export function named(argv: readonly string[]): string[] {
  const [first] = argv;
  if (first !== undefined && !first.startsWith('-')) return [...argv];
  if (argv.includes('--race')) {
    if (argv.some((arg) => /^--(scenario|compare)(=|$)/.test(arg))) {
      throw new UsageError('--race runs on its own: leave out --scenario and --compare');
    }
    return ['race', ...argv.filter((arg) => arg !== '--race')];
  }
  const at = argv.findIndex(
    (arg, index) =>
      arg === '--scenario=chaos' || (arg === '--scenario' && argv[index + 1] === 'chaos'),
  );
  if (at === -1) return ['compare', ...argv];
  const width = argv[at] === '--scenario' ? 2 : 1;
  return ['chaos', ...argv.slice(0, at), ...argv.slice(at + width)];
}

/**
 * A flag given to a command it means nothing in, named with the commands it belongs to (a
 * clearer message than parseArgs' "Unknown option").
 */
function checkOwnFlags(argv: readonly string[]): void {
  const [command, ...rest] = argv;
  const own = command === undefined ? undefined : FLAGS_OF[command];
  if (!own) return;
  for (const arg of rest) {
    if (arg === '--') return;
    const name = /^--([^=]+)/.exec(arg)?.[1];
    if (name === undefined || name in own) continue;
    const owners = Object.keys(FLAGS_OF).filter((other) => name in (FLAGS_OF[other] ?? {}));
    if (owners.length === 0) continue; // parseArgs names it unknown
    const why =
      command === 'chaos' && name === 'session-store'
        ? ' (it restarts Redis, which would end every session)'
        : '';
    throw new UsageError(
      `--${name} is not offered with ${command}${why}; it is an option of ${owners.map((owner) => `pnpm storm ${owner}`).join(' and ')}`,
    );
  }
}

/**
 * `pnpm storm`: runs the command `argv` names and returns the exit status: 0; 1 when a chaos
 * or race run found what it looks for broken; 2 for a mistake in the command line (printed
 * with a pointer to --help). Never exits the process itself, except that Ctrl-C stops what
 * the run started and exits 130.
 *
 * @example
 * const status = await main(['race', '--help'], { out, err });
 */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  return runCli(
    (io) => {
      if (argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h')) {
        io.out.write(`${HELP}\n`);
        return 0;
      }
      const command = named(argv);
      checkOwnFlags(command);
      return dispatch(command, COMMANDS, 'compare', io);
    },
    { help: helpOf(argv), io },
  );
}

/** Where a mistake's message points: the named command's help, or the runner's. */
function helpOf(argv: readonly string[]): string {
  let command: string | undefined;
  try {
    command = named(argv)[0];
  } catch {
    // the mistake is in the old form itself
  }
  return command && command !== 'compare' && Object.hasOwn(COMMANDS, command)
    ? `"pnpm storm ${command} --help"`
    : '"pnpm storm --help"';
}

await runAsProgram(import.meta.url, (argv) => main(argv), { name: 'storm', forceExit: true });
