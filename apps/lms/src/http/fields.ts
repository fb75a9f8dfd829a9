import type { Context } from 'hono';

/** Request fields as strings, or why they could not be read: bad input is a value, not a throw. */
export type Fields = { ok: true; fields: Record<string, string> } | { ok: false; error: string };

function fromObject(value: unknown): Fields {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, error: 'Request body must be a JSON object' };
  }
  const fields: Record<string, string> = {};
  for (const [key, field] of Object.entries(value)) {
    if (typeof field !== 'string') return { ok: false, error: `Field '${key}' must be a string` };
    fields[key] = field;
  }
  return { ok: true, fields };
}

const URLENCODED = 'application/x-www-form-urlencoded';

/**
 * A urlencoded form as Hono's parseBody and undici's FormData read it (bytes as UTF-8, the last
 * of repeated names wins, a name ending in `[]` is a list and so not a string field), without
 * building a fetch Response around the bytes: that costs more than the rest of a put_result.
 */
function fromUrlEncoded(bytes: ArrayBuffer): Fields {
  const fields: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(Buffer.from(bytes).toString())) {
    if (key.endsWith('[]')) return { ok: false, error: `Field '${key}' must be a string` };
    fields[key] = value;
  }
  return { ok: true, fields };
}

/**
 * Reads a form (urlencoded or multipart) or a JSON object whose values are strings, as real
 * clients post either. An empty body gives no fields.
 *
 * @example
 * const read = await readFields(c);
 * if (!read.ok) return c.json(failure(read.error), 400);
 */
export async function readFields(c: Context): Promise<Fields> {
  const type = (c.req.header('content-type') ?? '').toLowerCase();
  try {
    if (type.startsWith('application/json')) {
      const text = await c.req.text();
      if (text.trim() === '') return { ok: true, fields: {} };
      return fromObject(JSON.parse(text));
    }
    if (
      type.startsWith('application/x-www-form-urlencoded') ||
      type.startsWith('multipart/form-data')
    ) {
      // Hono's test for a form: the media type exactly, whatever the parameters.
      const mediaType = type.split(';')[0]?.trim();
      if (mediaType === URLENCODED) return fromUrlEncoded(await c.req.arrayBuffer());
      return fromObject(await c.req.parseBody());
    }
  } catch {
    return {
      ok: false,
      error: type.startsWith('application/json')
        ? 'Request body is not valid JSON'
        : 'Malformed form body',
    };
  }
  const text = await c.req.text();
  if (text === '') return { ok: true, fields: {} };
  return {
    ok: false,
    error: 'Send form fields (application/x-www-form-urlencoded) or a JSON object',
  };
}
