import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';

/** The address used when neither the socket nor a trusted proxy names one. */
export const UNKNOWN_ADDRESS = 'unknown';
const MAX_ADDRESS_LENGTH = 64;

function socketAddress(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    // `app.request()` in tests and non-Node adapters carry no socket.
    return undefined;
  }
}

/**
 * The last entry of a forwarded header (`X-Forwarded-For`, `-Proto`, `-Host`): the one our own
 * proxy set or appended; earlier ones are whatever the client sent. Undefined when empty.
 */
export function lastForwarded(c: Context, header: string): string | undefined {
  const last = c.req.header(header)?.split(',').at(-1)?.trim();
  return last ? last : undefined;
}

function forwardedAddress(c: Context): string | undefined {
  const last = lastForwarded(c, 'x-forwarded-for');
  return last && last.length <= MAX_ADDRESS_LENGTH ? last : undefined;
}

/**
 * The client's address for the login throttle: the socket's remote address, or, when
 * `TRUST_PROXY=true` (the LMS runs behind one reverse proxy), the last `X-Forwarded-For` entry.
 * Never trusts the header otherwise: a client could name any address and dodge the throttle.
 *
 * @example
 * const address = clientAddress(c, services.trustProxy); // '127.0.0.1'
 */
export function clientAddress(c: Context, trustProxy: boolean): string {
  const forwarded = trustProxy ? forwardedAddress(c) : undefined;
  return forwarded ?? socketAddress(c) ?? UNKNOWN_ADDRESS;
}
