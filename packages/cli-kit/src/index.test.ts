import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  capturedIo,
  choiceFlag,
  commandList,
  dispatch,
  isProgram,
  numberFlag,
  parseFlags,
  runAsProgram,
  runCli,
  UsageError,
} from './index.ts';

describe('parseFlags', () => {
  it('parses known flags and refuses unknown ones and positionals as usage errors', () => {
    const spec = { seed: { type: 'string' }, json: { type: 'boolean' } } as const;
    expect(parseFlags(['--seed', '3', '--json'], spec).values).toEqual({ seed: '3', json: true });
    expect(() => parseFlags(['--sed', '3'], spec)).toThrow(UsageError);
    expect(() => parseFlags(['--seed'], spec)).toThrow(/--seed/);
    expect(() => parseFlags(['extra'], spec)).toThrow(UsageError);
    expect(parseFlags(['a', 'b'], spec, { positionals: true }).positionals).toEqual(['a', 'b']);
  });
});

describe('numberFlag', () => {
  const rule = { min: 1, max: 10, integer: true };
  it('returns the fallback when absent and the value when in range', () => {
    expect(numberFlag('n', undefined, 4, rule)).toBe(4);
    expect(numberFlag('n', undefined, undefined, rule)).toBeUndefined();
    expect(numberFlag('n', '10', 4, rule)).toBe(10);
    expect(numberFlag('t', '0.5', 1, { min: 0, max: 1 })).toBe(0.5);
  });

  it.each(['', ' ', 'x', '0', '11', '2.5', 'NaN', 'Infinity'])('refuses %j', (raw) => {
    expect(() => numberFlag('n', raw, 4, rule)).toThrow(
      `--n must be an integer from 1 to 10 (got ${JSON.stringify(raw)})`,
    );
  });

  it('names the unit', () => {
    expect(() => numberFlag('drain', '-1', 0, { min: 0, max: 600, unit: 'seconds' })).toThrow(
      '--drain must be a number of seconds from 0 to 600 (got "-1")',
    );
  });
});

describe('choiceFlag', () => {
  it('accepts a listed value and refuses others', () => {
    expect(choiceFlag('store', undefined, ['sqlite', 'redis'], 'sqlite')).toBe('sqlite');
    expect(choiceFlag('store', 'redis', ['sqlite', 'redis'], 'sqlite')).toBe('redis');
    expect(() => choiceFlag('store', 'mysql', ['sqlite', 'redis'], 'sqlite')).toThrow(
      '--store must be one of sqlite, redis (got "mysql")',
    );
  });
});

describe('dispatch', () => {
  const seen: string[][] = [];
  const record = (name: string, status: number) => (argv: string[]) => {
    seen.push([name, ...argv]);
    return status;
  };
  const commands = {
    compare: { summary: 'side by side', run: record('compare', 0) },
    chaos: { summary: 'faults', run: record('chaos', 1) },
  };
  const io = capturedIo();

  it('runs the named subcommand with the rest, or the fallback with everything', async () => {
    expect(await dispatch(['chaos', '--seed', '2'], commands, 'compare', io)).toBe(1);
    expect(await dispatch(['--seed', '2'], commands, 'compare', io)).toBe(0);
    expect(await dispatch([], commands, 'compare', io)).toBe(0);
    expect(seen).toEqual([['chaos', '--seed', '2'], ['compare', '--seed', '2'], ['compare']]);
  });

  it('refuses an unknown word, listing the commands, and never an inherited name', () => {
    expect(() => dispatch(['race'], commands, 'compare', io)).toThrow(
      'unknown command "race"; the commands are compare, chaos',
    );
    expect(() => dispatch(['toString'], commands, 'compare', io)).toThrow(UsageError);
  });

  it('lists the commands aligned', () => {
    expect(commandList(commands)).toBe('  compare  side by side\n  chaos    faults');
  });
});

describe('runCli', () => {
  it('turns a usage error into its message on stderr and status 2', async () => {
    const io = capturedIo();
    const status = await runCli(
      () => {
        throw new UsageError('--seed must be an integer');
      },
      { help: 'pnpm sim --help', io },
    );
    expect(status).toBe(2);
    expect(io.stderr).toBe('--seed must be an integer (see pnpm sim --help)\n');
  });

  it('returns main status and rethrows other errors', async () => {
    const io = capturedIo();
    expect(await runCli(() => 3, { help: 'x', io })).toBe(3);
    await expect(
      runCli(
        () => {
          throw new TypeError('bug');
        },
        { help: 'x', io },
      ),
    ).rejects.toThrow(TypeError);
  });
});

describe('isProgram and runAsProgram', () => {
  it('knows the module node was started with, and nothing else', () => {
    expect(isProgram(import.meta.url, fileURLToPath(import.meta.url))).toBe(true);
    expect(isProgram(import.meta.url, fileURLToPath(new URL('./index.ts', import.meta.url)))).toBe(
      false,
    );
    expect(isProgram(import.meta.url, '/no/such/file.ts')).toBe(false);
    expect(isProgram(import.meta.url, undefined)).toBe(false);
  });

  it('runs nothing when the module is imported', async () => {
    let ran = false;
    await runAsProgram(
      import.meta.url,
      () => {
        ran = true;
        return 0;
      },
      { name: 'test' },
    );
    expect(ran).toBe(false);
    expect(process.exitCode).toBeUndefined();
  });
});
