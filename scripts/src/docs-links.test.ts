import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { codePathsOf, headingAnchors, historyInProse, linksOf } from './markdown.ts';
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

/** The workspace's packages: every folder of apps/ and packages/, and the ones at the root. */
const PACKAGES = [
  ...['apps', 'packages'].flatMap((group) =>
    readdirSync(join(root, group)).map((name) => join(group, name)),
  ),
  'bench',
  'sim',
  'scripts',
].filter((dir) => existsSync(join(root, dir, 'package.json')));

/**
 * Where a path named in a document may start: the root, the document's folder, and its
 * package and that package's `src/`; a document outside every package (the root README,
 * `docs/*.md`) may also name a path inside any package, such as `auth/login.ts` of the LMS.
 */
function basesOf(document: string): string[] {
  const owner = PACKAGES.find((dir) => document.startsWith(`${dir}/`));
  const packages = owner === undefined ? PACKAGES : [owner];
  return ['', dirname(document), ...packages.flatMap((dir) => [dir, join(dir, 'src')])];
}

/** The paths of `candidates` that git ignores (built or run output, such as `storm-report/`). */
function ignoredOf(candidates: string[]): Set<string> {
  try {
    const out = execFileSync('git', ['check-ignore', '--no-index', '--stdin'], {
      cwd: root,
      input: candidates.join('\n'),
      encoding: 'utf8',
    });
    return new Set(out.split('\n').filter(Boolean));
  } catch {
    return new Set(); // exit status 1: none ignored
  }
}

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

  it.each(DOCUMENTS)('%s: every file path named in inline code exists', (path) => {
    const missing = codePathsOf(readFileSync(join(root, path), 'utf8')).filter(
      ({ path: named }) => !basesOf(path).some((base) => existsSync(join(root, base, named))),
    );
    const ignored = ignoredOf(
      missing.flatMap(({ path: named }) => basesOf(path).map((base) => join(base, named))),
    );
    const wrong = missing
      .filter(({ path: named }) => !basesOf(path).some((base) => ignored.has(join(base, named))))
      .map(({ path: named, line }) => `line ${line}: ${named}`);
    expect(wrong).toEqual([]);
  });

  it.each(READMES)('%s: no dated runs, commit hashes or issue numbers in the prose', (path) => {
    expect(historyInProse(readFileSync(join(root, path), 'utf8'))).toEqual([]);
  });

  it('keeps the root README a front door of about 200 lines at most', () => {
    const lines = readFileSync(join(root, 'README.md'), 'utf8').split('\n').length;
    expect(lines).toBeLessThanOrEqual(210);
  });
});
