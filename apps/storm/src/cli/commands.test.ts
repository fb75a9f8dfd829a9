import { capturedIo } from '@storm-lab/cli-kit';
import { describe, expect, it } from 'vitest';
import { main, named } from '../cli.ts';
import { parseChaos } from './chaos.ts';
import { parseCompare } from './compare.ts';
import { parseRace } from './race.ts';

// Importing cli.ts above ran nothing and exited nothing: these tests run in this process.

/** Runs `pnpm storm ARGV` in process; its exit status and what it wrote. */
async function storm(...argv: string[]) {
  const io = capturedIo();
  const status = await main(argv, io);
  return { status, stdout: io.stdout, stderr: io.stderr };
}

describe('pnpm storm commands', () => {
  it('prints the commands and compare, the default, for --help', async () => {
    const help = await storm('--help');
    expect(help.status).toBe(0);
    for (const command of ['compare', 'chaos', 'race', 'compose-check']) {
      expect(help.stdout).toMatch(new RegExp(`^  ${command} +\\S`, 'm'));
    }
    expect(help.stdout).toContain('pnpm storm --scenario NAME');
  });

  it.each([
    ['compare', '--parallel N'],
    ['chaos', '--seed N'],
    ['race', '--logins K'],
    ['compose-check', '--scale-to N'],
  ])('%s has its own --help', async (command, flag) => {
    const help = await storm(command, '--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain(
      `pnpm ${command === 'compose-check' ? 'compose:check' : `storm ${command}`}`,
    );
    expect(help.stdout).toContain(flag);
  });

  it('refuses a flag in a command it means nothing in, naming the command it belongs to', async () => {
    for (const [argv, message] of [
      [['--seed', '7'], '--seed is not offered with compare; it is an option of pnpm storm chaos'],
      [
        ['compare', '--logins', '4'],
        '--logins is not offered with compare; it is an option of pnpm storm race',
      ],
      [['chaos', '--rounds', '4'], '--rounds is not offered with chaos'],
      [['race', '--replicas', '3'], '--replicas is not offered with race'],
      [['chaos', '--session-store', 'redis'], 'not offered with chaos (it restarts Redis'],
      [['race', '--open'], '--open is not offered with race'],
    ] as const) {
      const refused = await storm(...argv);
      expect(refused.status, argv.join(' ')).toBe(2);
      expect(refused.stderr, argv.join(' ')).toContain(message);
    }
  });

  it('points a mistake to the help of the command it was made in', async () => {
    const race = await storm('race', '--logins', 'many');
    expect(race.status).toBe(2);
    expect(race.stderr).toBe(
      '--logins must be an integer from 1 to 64 (got "many") (see "pnpm storm race --help")\n',
    );
    const compare = await storm('--replicas', '0');
    expect(compare.stderr).toContain('(see "pnpm storm --help")');
    const unknown = await storm('strom');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain(
      'unknown command "strom"; the commands are compare, chaos, race',
    );
  });

  it('reads a scenario that does not load as a mistake in the command line', async () => {
    const unknown = await storm('--scenario', 'strom');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown scenario "strom"');
    const chaos = await storm('--compare', 'storm,chaos');
    expect(chaos.stderr).toContain('chaos is a command of its own: pnpm storm chaos');
  });
});

describe('the command line before the commands had names', () => {
  it('runs chaos for --scenario chaos and race for --race, with their flags', () => {
    expect(named(['--scenario', 'chaos', '--seed', '7', '--json'])).toEqual([
      'chaos',
      '--seed',
      '7',
      '--json',
    ]);
    expect(named(['--json', '--scenario=chaos'])).toEqual(['chaos', '--json']);
    expect(named(['--race', '--rounds', '4', '--logins', '6'])).toEqual([
      'race',
      '--rounds',
      '4',
      '--logins',
      '6',
    ]);
    expect(named([])).toEqual(['compare']);
    expect(named(['--compare', 'storm,flag-off'])).toEqual([
      'compare',
      '--compare',
      'storm,flag-off',
    ]);
    expect(named(['race', '--race'])).toEqual(['race', '--race']);
    expect(() => named(['--race', '--scenario', 'storm'])).toThrow('--race runs on its own');
  });

  it('gives each form the same settings', () => {
    const old = named(['--scenario', 'chaos', '--seed', '7', '--submissions', '300']);
    expect(parseChaos(old.slice(1))).toEqual(parseChaos(['--seed', '7', '--submissions', '300']));
  });
});

describe('the defaults of each command', () => {
  it('compare: the default comparison, 2x2x2, 6 s of load, 24 submissions, sessions in SQLite', () => {
    const options = parseCompare([]);
    expect(options.names).toEqual([
      'storm',
      'storm-legacy-watcher',
      'storm-hardened-watcher',
      'exempt-username',
      'exempt-group',
    ]);
    expect(options.settings).toMatchObject({
      replicas: 2,
      queues: 2,
      connections: 2,
      durationSeconds: 6,
      submissions: 24,
      students: 4,
      compression: 2,
      drainSeconds: 3,
      gradingSeconds: 1,
      sessionStore: 'sqlite',
      lmsWorkers: 1,
    });
    expect(options.parallel).toBe(1);
    expect(parseCompare(['--preset', 'production']).settings).toMatchObject({
      compression: 1,
      durationSeconds: 120,
      submissions: 96,
      drainSeconds: 15,
    });
  });

  it('chaos: 3 replicas, 40 s of faults, 2000 submissions, instant grading, a seed', () => {
    const options = parseChaos(['--seed', '7']);
    expect(options.seed).toBe(7);
    expect(options.settings).toMatchObject({
      replicas: 3,
      durationSeconds: 40,
      submissions: 2000,
      gradingSeconds: 0,
      compression: 2,
      drainSeconds: 3,
      sessionStore: 'sqlite',
    });
    expect(parseChaos(['--preset', 'production']).settings).toMatchObject({
      compression: 1,
      durationSeconds: 40,
      drainSeconds: 15,
    });
  });

  it('race: 8 logins, 20 rounds, 2x, one LMS worker on SQLite; more workers need Redis', () => {
    expect(parseRace([])).toMatchObject({
      logins: 8,
      rounds: 20,
      compression: 2,
      sessions: { sessionStore: 'sqlite', lmsWorkers: 1 },
    });
    expect(parseRace(['--lms-workers', '2', '--session-store', 'redis']).sessions).toEqual({
      sessionStore: 'redis',
      lmsWorkers: 2,
    });
    expect(() => parseRace(['--lms-workers', '2'])).toThrow(
      '--lms-workers above 1 shares sessions through Redis',
    );
  });
});
