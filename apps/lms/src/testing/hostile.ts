import type Database from 'better-sqlite3';
import fc from 'fast-check';

/** A generated request body and its size in bytes (FormData is generated small: size 0). */
export interface HostileBody {
  body: NonNullable<RequestInit['body']>;
  bytes: number;
  /** What generated it, for failure reports. */
  kind: string;
  /** The content type a client would send with it; none leaves fetch's default. */
  type?: string;
}

const PRINTABLE = fc.mapToConstant(
  { num: 95, build: (index) => String.fromCharCode(0x20 + index) },
  { num: 96, build: (index) => String.fromCharCode(0xa0 + index) },
);

/** Lowercase hex, as pull keys are. */
export const hex = (length: { minLength: number; maxLength: number }) =>
  fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), ...length });

/** A header value a client can send (printable Latin-1: fetch refuses control characters). */
export const headerValue = fc.string({ unit: PRINTABLE, maxLength: 200 });

/** Any string, including lone surrogates and control characters. */
const anyText = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.constantFrom(
    '',
    ' ',
    '%',
    '%zz',
    '%E0%A4%A',
    '\u0000',
    '\ud800',
    '{}',
    '[]',
    'null',
    '1e400',
    '{"correct":true,"score":1e400,"msg":""}',
  ),
);

/** A JSON value of any shape, or a number a double cannot hold exactly. */
const anyJsonValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(-0, 2 ** 53 + 1, 0.1, Number.MAX_VALUE),
);

const contentTypes = fc.oneof(
  fc.constantFrom(
    'application/json',
    'application/json; charset=utf-16',
    'APPLICATION/JSON',
    'application/x-www-form-urlencoded',
    'multipart/form-data',
    'multipart/form-data; boundary=x',
    'text/plain',
    'application/octet-stream',
    '',
  ),
  headerValue,
);

/**
 * A content type clients send, plausible or not, in one request of four; undefined (the other
 * three) keeps the one the body implies, so most requests reach the parsers.
 */
export const contentType = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: contentTypes },
);

const JSON_TYPE = 'application/json';
const FORM_TYPE = 'application/x-www-form-urlencoded';

function textBody(kind: string, text: string, type?: string): HostileBody {
  return { body: text, bytes: Buffer.byteLength(text), kind, ...(type ? { type } : {}) };
}

/**
 * Request bodies an attacker or a broken client might send, built around the endpoint's own
 * field names: wrong types, broken JSON and form encodings, invalid UTF-8, multipart with files,
 * and bodies just over `maxBodyBytes`.
 */
export function hostileBody(fields: readonly string[], maxBodyBytes: number) {
  const name = fc.oneof(fc.constantFrom(...fields), fc.string({ maxLength: 20 }));
  const value = fc.oneof(
    anyText,
    anyJsonValue.map((json) => JSON.stringify(json) ?? ''),
  );
  const object = fc.dictionary(name, fc.oneof(anyText, anyJsonValue), { maxKeys: 6 });
  const pairs = fc.array(fc.tuple(name, value), { maxLength: 6 });
  // Exactly the endpoint's fields, with hostile values: gets past "missing field" checks.
  const complete = fc.record(Object.fromEntries(fields.map((field) => [field, value])));
  return fc.oneof(
    complete.map((record) => {
      const form = new URLSearchParams(record);
      return { body: form, bytes: Buffer.byteLength(form.toString()), kind: 'complete-form' };
    }),
    complete.map((record) => textBody('complete-json', JSON.stringify(record), JSON_TYPE)),
    object.map((json) => textBody('json-object', JSON.stringify(json), JSON_TYPE)),
    anyJsonValue.map((json) => textBody('json-value', JSON.stringify(json) ?? '', JSON_TYPE)),
    fc.string({ maxLength: 300 }).map((text) => textBody('text', text)),
    pairs.map((list) => {
      const form = new URLSearchParams(list);
      return { body: form, bytes: Buffer.byteLength(form.toString()), kind: 'form' };
    }),
    fc
      .array(fc.oneof(anyText, fc.constantFrom('&', '=', '+', '%2', '&&==')), { maxLength: 12 })
      .map((parts) => textBody('raw-form', parts.join(''), FORM_TYPE)),
    fc
      .uint8Array({ maxLength: 300 })
      .map((bytes) => ({ body: bytes, bytes: bytes.length, kind: 'bytes' })),
    // At most three fields of at most 800 bytes: always under the 4 KiB limit of the fuzz tests.
    fc.array(fc.tuple(name, value, fc.boolean()), { maxLength: 3 }).map((list) => {
      const form = new FormData();
      for (const [key, text, asFile] of list) {
        if (asFile) form.append(key, new Blob([text]), 'upload.bin');
        else form.append(key, text);
      }
      return { body: form, bytes: 0, kind: 'multipart' };
    }),
    fc
      .integer({ min: maxBodyBytes + 1, max: maxBodyBytes * 3 })
      .map((size) => textBody('oversized', `{"x":"${'x'.repeat(size)}"}`)),
  );
}

const authHeaders = fc.record(
  {
    cookie: fc.oneof(
      headerValue,
      headerValue.map((value) => `sessionid=${value}`),
      headerValue.map((value) => `csrftoken=${value}; sessionid=${value}`),
    ),
    'x-csrftoken': headerValue,
  },
  { requiredKeys: [] },
);

const otherHeaders = fc.record(
  {
    'x-client-instance': headerValue,
    'content-encoding': fc.constantFrom('gzip', 'br', 'identity', 'x-unknown'),
    'x-forwarded-proto': headerValue,
    'x-forwarded-for': headerValue,
    referer: headerValue,
  },
  { requiredKeys: [] },
);

/**
 * Header overrides: garbage cookies and CSRF tokens (in one request of four, so that most
 * requests get past authentication to the parsers), instance names, encodings, proxy headers.
 */
export const hostileHeaders = fc
  .tuple(fc.oneof({ weight: 3, arbitrary: fc.constant({}) }, authHeaders), otherHeaders)
  .map(([auth, other]): Record<string, string> => ({ ...other, ...auth }));

/** A query string with the given parameter names, raw: broken escapes, repeats, arrays. */
export function hostileQuery(names: readonly string[]) {
  const name = fc.oneof(
    fc.constantFrom(...names),
    fc.constantFrom(...names).map((key) => `${key}[]`),
    fc.string({ maxLength: 10 }),
  );
  const raw = fc.oneof(
    fc.string({ unit: PRINTABLE, maxLength: 200 }).map((text) => encodeURIComponent(text)),
    fc.constantFrom('', '%', '%zz', '%E0%A4%A', '%00', 'a'.repeat(129), 'test-queue', '+', '%2B'),
  );
  return fc
    .array(fc.tuple(name, raw), { maxLength: 4 })
    .map((pairs) => pairs.map(([key, value]) => `${encodeURIComponent(key)}=${value}`).join('&'));
}

/**
 * What the database holds, for before/after comparison: every table's row count, and the
 * columns of submissions and sessions that a request could change.
 */
export function storedState(sqlite: Database.Database) {
  const tables = sqlite
    .prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .all() as { name: string }[];
  const counts = Object.fromEntries(
    tables.map(({ name }) => [
      name,
      (sqlite.prepare(`SELECT count(*) AS n FROM "${name}"`).get() as { n: number }).n,
    ]),
  );
  return {
    counts,
    submissions: sqlite
      .prepare('SELECT id, state, pull_key, pull_count, result, result_posts FROM submissions')
      .all(),
    sessions: sqlite.prepare('SELECT id, expires_at, last_seen_at FROM sessions ORDER BY id').all(),
    profiles: sqlite.prepare('SELECT user_id, meta FROM profiles ORDER BY user_id').all(),
  };
}
