/** A link of a markdown file: where it points, and the line it is on. */
export interface MarkdownLink {
  target: string;
  line: number;
}

/** The file's lines with fenced code blocks blanked (kept as empty lines, so numbers hold). */
export function proseLines(markdown: string): string[] {
  let fenced = false;
  return markdown.split('\n').map((line) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return '';
    }
    return fenced ? '' : line;
  });
}

/** A prose line without its inline code spans. */
export function withoutInlineCode(line: string): string {
  return line.replace(/`[^`]*`/g, '');
}

/** Every `[text](target)` and `![alt](target)` outside code. */
export function linksOf(markdown: string): MarkdownLink[] {
  const links: MarkdownLink[] = [];
  proseLines(markdown).forEach((line, index) => {
    for (const match of withoutInlineCode(line).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      if (match[1] !== undefined) links.push({ target: match[1], line: index + 1 });
    }
  });
  return links;
}

/**
 * The anchors GitHub gives a file's headings: lower case, punctuation dropped, spaces to
 * hyphens, a repeated heading numbered `-1`, `-2`.
 *
 * @example
 * headingAnchors('## Upstream\'s race: `pnpm storm --race`'); // ['upstreams-race-pnpm-storm---race']
 */
export function headingAnchors(markdown: string): string[] {
  const seen = new Map<string, number>();
  const anchors: string[] = [];
  for (const line of proseLines(markdown)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading?.[1] === undefined) continue;
    const text = heading[1].replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.push(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** What README prose must not hold: dated runs, commit hashes, issue numbers. */
const HISTORY = [
  { what: 'a date', pattern: /\b20\d\d-\d\d-\d\d\b/ },
  { what: 'an issue number', pattern: /\b(?:issue|PR)\s*#?\d+/i },
  { what: 'a commit hash', pattern: /\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b/ },
];

/** Lines of README prose (code and inline code aside) that record history instead of facts. */
export function historyInProse(markdown: string): string[] {
  const found: string[] = [];
  proseLines(markdown).forEach((line, index) => {
    const prose = withoutInlineCode(line);
    for (const { what, pattern } of HISTORY) {
      const match = pattern.exec(prose);
      if (match) found.push(`line ${index + 1}: ${what} (${match[0]})`);
    }
  });
  return found;
}

/** A file path a markdown file names in inline code, and the line it is on. */
export interface CodePath {
  path: string;
  line: number;
}

/**
 * A relative path to a source or document file, at least one folder deep: no spaces, globs,
 * placeholders or absolute paths (those name runtime files, not the tree's).
 */
const CODE_PATH =
  /^(?!\.{0,2}\/)[\w@.-]+(?:\/[\w@.-]+)+\.(?:ts|tsx|js|mjs|md|json|sql|lua|yml|yaml|css|png|svg)$/;

/**
 * Every inline-code span of the prose that names a file of the tree, such as
 * `apps/lms/src/sessions/store.ts` or `routes/xqueue.test.ts`.
 *
 * @example
 * codePathsOf('See `src/app.ts` and `pnpm test`.'); // [{ path: 'src/app.ts', line: 1 }]
 */
export function codePathsOf(markdown: string): CodePath[] {
  const paths: CodePath[] = [];
  proseLines(markdown).forEach((line, index) => {
    for (const match of line.matchAll(/`([^`]+)`/g)) {
      const span = match[1]?.trim() ?? '';
      if (CODE_PATH.test(span)) paths.push({ path: span, line: index + 1 });
    }
  });
  return paths;
}
