import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { headingAnchors, historyInProse, linksOf } from './markdown.ts';
import { repositoryRoot } from './repository.ts';

const root = repositoryRoot();

/** Markdown files of one folder (not recursive). */
const markdownIn = (dir: string) =>
  existsSync(join(root, dir))
    ? readdirSync(join(root, dir))
        .filter((name) => name.endsWith('.md'))
        .map((name) => join(dir, name))
    : [];

/** Every README of the workspace: the root's and each package's. */
const READMES = [
  'README.md',
  ...['apps', 'packages'].flatMap((group) =>
    readdirSync(join(root, group)).map((name) => join(group, name, 'README.md')),
  ),
  'bench/README.md',
  'sim/README.md',
  'scripts/README.md',
].filter((path) => existsSync(join(root, path)));

const DOCUMENTS = [...READMES, ...markdownIn('docs'), ...markdownIn('bench/results')];

describe('the documentation', () => {
  it.each(DOCUMENTS)('%s: every relative link reaches a file, and its anchor a heading', (path) => {
    const text = readFileSync(join(root, path), 'utf8');
    const broken: string[] = [];
    for (const { target, line } of linksOf(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
      const [file = '', anchor] = target.split('#');
      const resolved = file === '' ? join(root, path) : join(root, dirname(path), file);
      if (!existsSync(resolved)) {
        broken.push(`line ${line}: ${target} (no ${relative(root, resolved)})`);
      } else if (anchor !== undefined && resolved.endsWith('.md')) {
        if (!headingAnchors(readFileSync(resolved, 'utf8')).includes(anchor)) {
          broken.push(`line ${line}: ${target} (no heading #${anchor})`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it.each(READMES)('%s: no dated runs, commit hashes or issue numbers in the prose', (path) => {
    expect(historyInProse(readFileSync(join(root, path), 'utf8'))).toEqual([]);
  });

  it('keeps the root README a front door of about 200 lines at most', () => {
    const lines = readFileSync(join(root, 'README.md'), 'utf8').split('\n').length;
    expect(lines).toBeLessThanOrEqual(210);
  });
});
