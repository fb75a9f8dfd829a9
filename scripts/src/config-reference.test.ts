import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  CONFIG_REFERENCE_PATH,
  composeRows,
  formatDefault,
  renderConfigReference,
  rowOf,
} from './config-reference.ts';
import { OTHER_VARIABLES } from './other-variables.ts';
import { repositoryRoot } from './repository.ts';

const root = repositoryRoot();
const read = (path: string) => readFileSync(join(root, path), 'utf8');

/** Every non-test TypeScript source under `dir`, concatenated. */
function sourcesOf(dir: string): string {
  const texts: string[] = [];
  const walk = (path: string) => {
    for (const entry of readdirSync(path)) {
      if (entry === 'node_modules') continue;
      const full = join(path, entry);
      if (statSync(full).isDirectory()) walk(full);
      else if (entry.endsWith('.ts') && !entry.endsWith('.test.ts'))
        texts.push(readFileSync(full, 'utf8'));
    }
  };
  walk(join(root, dir, 'src'));
  return texts.join('\n');
}

describe('the configuration reference', () => {
  it('is what the schemas say: run `pnpm docs:config` after changing an env.ts', () => {
    const expected = renderConfigReference(read('docker-compose.yml'));
    expect(
      read(CONFIG_REFERENCE_PATH),
      `${CONFIG_REFERENCE_PATH} is out of date: run pnpm docs:config`,
    ).toBe(expected);
  });

  it('refuses a variable whose schema has no .describe() text', () => {
    expect(() => rowOf('NEW_VARIABLE', z.string().default('x'))).toThrow(
      'NEW_VARIABLE has no .describe() text in its schema',
    );
  });

  it("shows a schema's default for an unset variable, and unset or empty otherwise", () => {
    expect(rowOf('A', z.coerce.number().default(8000).describe('a')).defaultText).toBe('`8000`');
    expect(rowOf('B', z.string().optional().describe('b')).defaultText).toBe('unset');
    expect(formatDefault([])).toBe('empty');
    expect(formatDefault(false)).toBe('`false`');
  });

  it('refuses a compose variable that no schema reads and the reference does not explain', () => {
    // Compose's interpolation syntax, written with `$` apart so that it is no template literal.
    const interpolate = (name: string) => `$${'{'}${name}}`;
    expect(() => composeRows(`image: ${interpolate('SOMETHING_NEW:-1')}`)).toThrow('SOMETHING_NEW');
    expect(
      composeRows(`a: $${interpolate('NOT_COMPOSE')} ${interpolate('LMS_PORT:-8000')}`),
    ).toEqual([expect.objectContaining({ name: 'LMS_PORT', defaultText: '`8000`' })]);
  });

  it('names only variables that the named package still reads', () => {
    for (const variable of OTHER_VARIABLES) {
      const sources = sourcesOf(variable.readBy);
      for (const name of variable.name.split(', ')) {
        expect(sources, `${name} in ${variable.readBy}`).toContain(name.replace('*', ''));
      }
    }
  });
});
