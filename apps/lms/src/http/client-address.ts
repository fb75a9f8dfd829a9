import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';
import proxyaddr from 'proxy-addr';

/** The address used when neither the socket nor a trusted proxy names one. */
export const UNKNOWN_ADDRESS = 'unknown';

/**
 * Which hops may speak for the client: given an address (the socket's peer, then each
 * `X-Forwarded-For` entry from the right) and its hop number, whether it is one of our proxies.
 */
export type ProxyTrust = (address: string, hop: number) => boolean;

/** No proxy: forwarded headers are the client's word and count for nothing. */
export const TRUST_NO_PROXY: ProxyTrust = () => false;

// Peers whose trust compileProxyTrust remembers.
const TRUST_MEMO_LIMIT = 1024;

/**
 * Compiles TRUST_PROXY's list with proxy-addr (what Express's `trust proxy` uses): addresses,
 * CIDR ranges (`10.0.0.0/8`, `fd00::/8`, `10.0.0.0/255.0.0.0`) and the names `loopback`,
 * `linklocal`, `uniquelocal`. IPv4-mapped IPv6 peers (`::ffff:10.0.0.2`) match IPv4 ranges.
 * An empty list trusts no proxy. Throws a TypeError naming an entry that is none of these.
 *
 * @example
 * const trust = compileProxyTrust(['loopback', '10.0.0.0/8']);
 * trust('10.1.2.3', 0); // true
 */
export function compileProxyTrust(proxies: readonly string[]): ProxyTrust {
  if (proxies.length === 0) return TRUST_NO_PROXY;
  const compiled = proxyaddr.compile([...proxies]);
  // Every request asks about its peer three or four times (the CSRF cookie's Secure flag, the
  // request's origin, the client's address), and proxy-addr parses the address each time. Its
  // answer depends on the address alone (a compiled list ignores the hop), and peers are few: a
  // small memo keeps them, emptied when full so no client can make it grow.
  const known = new Map<string, boolean>();
  return (address, hop) => {
    let trusted = known.get(address);
    if (trusted === undefined) {
      trusted = compiled(address, hop);
      if (known.size >= TRUST_MEMO_LIMIT) known.clear();
      known.set(address, trusted);
    }
    return trusted;
  };
}

function socketAddress(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    // `app.request()` in tests and non-Node adapters carry no socket.
    return undefined;
  }
}

/**
 * Whether the request came from one of our proxies, so its forwarded headers are theirs. A
 * request without a socket (`app.request()`) came from no proxy.
 */
export function fromTrustedProxy(c: Context, trust: ProxyTrust): boolean {
  const peer = socketAddress(c);
  return peer !== undefined && trust(peer, 0);
}

/**
 * The last entry of a forwarded header (`X-Forwarded-Proto`, `-Host`) when the socket's peer is
 * one of our proxies: the one the nearest proxy set or appended; earlier ones are whatever the
 * client sent. Undefined when empty or when the peer is not a trusted proxy.
 */
export function trustedForwarded(
  c: Context,
  trust: ProxyTrust,
  header: string,
): string | undefined {
  if (!fromTrustedProxy(c, trust)) return undefined;
  const last = c.req.header(header)?.split(',').at(-1)?.trim();
  return last ? last : undefined;
}

/**
 * The client's address for the login throttle and the session: the socket's peer, or, when the
 * peer is one of our proxies (TRUST_PROXY), the right-most `X-Forwarded-For` entry that is not
 * one of them, as proxy-addr (Express's `req.ip`) picks it. A client that connects directly
 * cannot name another address: its header is never read. An entry that is not an IP address
 * (a proxy passing on garbage) gives way to the trusted hop that forwarded it.
 *
 * @example
 * const address = clientAddress(c, services.trustProxy); // '127.0.0.1'
 */
export function clientAddress(c: Context, trust: ProxyTrust): string {
  const peer = socketAddress(c);
  if (peer === undefined) return UNKNOWN_ADDRESS;
  if (!trust(peer, 0)) return peer;
  // proxy-addr reads only these two fields of a Node request.
  const request = {
    socket: { remoteAddress: peer },
    headers: { 'x-forwarded-for': c.req.header('x-forwarded-for') },
  } as unknown as IncomingMessage;
  const hops = proxyaddr.all(request, trust);
  const client = hops.at(-1) ?? peer;
  return isIP(client) !== 0 ? client : (hops.at(-2) ?? peer);
}
