import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { getRequestListener } from '@hono/node-server';

/** One request as a simulated connection carries it to the LMS. */
export interface WireRequest {
  url: string;
  init: RequestInit;
  /** The client's address, as the LMS's socket reports it. */
  remoteAddress: string;
}

/** What the LMS wrote back: the status, the headers and the whole body. */
export interface WireAnswer {
  status: number;
  headers: OutgoingHttpHeaders;
  body: string | Buffer | null;
}

/** A request's header fields as `[name, value]` pairs, as sent. */
function fieldsOf(headers: RequestInit['headers']): [string, string][] {
  if (headers === undefined) return [];
  // The clients' own way: a plain record of names to values, taken as it is.
  if (!(headers instanceof Headers) && !Array.isArray(headers)) {
    return Object.entries(headers).map(([name, value]) => [
      name,
      typeof value === 'string' ? value : value.join(', '),
    ]);
  }
  return [...new Headers(headers)];
}

/** The request line and headers as Node's HTTP parser gives them to a server. */
function incomingOf(request: WireRequest): IncomingMessage {
  const { url, init } = request;
  const start = url.indexOf('/', url.indexOf('//') + 2);
  const host =
    start === -1 ? url.slice(url.indexOf('//') + 2) : url.slice(url.indexOf('//') + 2, start);
  const headers: Record<string, string> = { host };
  const rawHeaders = ['Host', host];
  for (const [name, value] of fieldsOf(init.headers)) {
    headers[name.toLowerCase()] = value;
    rawHeaders.push(name, value);
  }
  let rawBody: Buffer | undefined;
  if (init.body !== undefined && init.body !== null) {
    if (typeof init.body !== 'string')
      throw new TypeError('the simulated network carries string bodies');
    rawBody = Buffer.from(init.body);
    // Every HTTP client sends it on the wire.
    headers['content-length'] = String(rawBody.byteLength);
    rawHeaders.push('content-length', headers['content-length']);
  }
  const socket = { remoteAddress: request.remoteAddress, remotePort: 0, remoteFamily: 'IPv4' };
  const incoming = {
    method: init.method ?? 'GET',
    url: start === -1 ? '/' : url.slice(start),
    headers,
    rawHeaders,
    // The whole body, already received: @hono/node-server reads it from here without a stream.
    rawBody,
    socket,
    httpVersion: '1.1',
    readableEnded: true,
    on() {
      return this;
    },
    once() {
      return this;
    },
    off() {
      return this;
    },
  };
  return incoming as unknown as IncomingMessage;
}

/** A server response that keeps what the listener writes. */
class CapturedResponse {
  status = 200;
  headers: OutgoingHttpHeaders = {};
  private readonly chunks: (string | Uint8Array)[] = [];
  headersSent = false;
  writableFinished = false;
  writable = true;
  destroyed = false;

  writeHead(status: number, headers?: OutgoingHttpHeaders): this {
    this.status = status;
    if (headers) Object.assign(this.headers, headers);
    this.headersSent = true;
    return this;
  }

  write(chunk: string | Uint8Array): boolean {
    this.chunks.push(chunk);
    return true;
  }

  end(chunk?: string | Uint8Array): this {
    if (chunk !== undefined) this.chunks.push(chunk);
    this.writableFinished = true;
    this.writable = false;
    return this;
  }

  on(): this {
    return this;
  }

  once(): this {
    return this;
  }

  destroy(): void {
    this.destroyed = true;
  }

  answer(): WireAnswer {
    const [first] = this.chunks;
    const body =
      this.chunks.length === 0
        ? null
        : this.chunks.length === 1 && typeof first === 'string'
          ? first
          : Buffer.concat(this.chunks.map((chunk) => Buffer.from(chunk)));
    return { status: this.status, headers: this.headers, body };
  }
}

/**
 * Serves `fetch` (an app's) as the LMS's process does, through @hono/node-server's request
 * listener (what `serve()` installs on its `node:http` server), over a simulated connection: the
 * request arrives as Node's parser would hand it over, its body already received, and the
 * answer is what the listener writes back. Like `serve()`, the first call puts
 * @hono/node-server's Request and Response in place of the global ones.
 *
 * @example
 * const serve = wireServer(app.fetch);
 * const answer = await serve({ url: 'http://lms.sim/healthz', init: {}, remoteAddress: '10.0.0.1' });
 */
export function wireServer(
  fetch: (request: Request, env: unknown) => Response | Promise<Response>,
): (request: WireRequest) => Promise<WireAnswer> {
  const listener = getRequestListener(fetch);
  return async (request) => {
    const outgoing = new CapturedResponse();
    await listener(incomingOf(request), outgoing as unknown as ServerResponse);
    return outgoing.answer();
  };
}

// This runtime's fetch Response, taken before @hono/node-server puts its own in place.
const FetchResponse = globalThis.Response;
// Its status and headers, as a base to override the body's methods on (the DOM typings declare
// those methods as properties, which a subclass may not redefine as methods).
const ResponseHead = FetchResponse as unknown as new (
  body: null,
  init: ResponseInit,
) => Pick<Response, 'headers' | 'ok' | 'redirected' | 'status' | 'statusText' | 'type' | 'url'>;

/**
 * An answer as a client's HTTP library hands it over once it has read it off the socket: status
 * and headers as any fetch Response, and the body already whole, so that reading it builds no
 * stream. The body reads once, as a fetch Response's does; taking `body` counts as reading it.
 */
class ReceivedResponse extends ResponseHead {
  readonly #content: string | Buffer | null;
  #used = false;

  constructor(content: string | Buffer | null, init: ResponseInit) {
    super(null, init);
    this.#content = content;
  }

  #take(): string | Buffer {
    if (this.#used) throw new TypeError('Body is unusable: Body has already been read');
    this.#used = true;
    return this.#content ?? '';
  }

  get bodyUsed(): boolean {
    return this.#used;
  }

  get body(): ReadableStream<Uint8Array> | null {
    if (this.#content === null) return null;
    return new FetchResponse(this.#take()).body;
  }

  async text(): Promise<string> {
    const content = this.#take();
    return typeof content === 'string' ? content : content.toString('utf8');
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = Buffer.from(this.#take());
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }

  async blob(): Promise<Blob> {
    return new Blob([this.#take()], { type: this.headers.get('content-type') ?? '' });
  }

  async formData(): Promise<FormData> {
    return new FetchResponse(this.#take(), { headers: this.headers }).formData();
  }

  clone(): Response {
    if (this.#used) throw new TypeError('Response.clone: Body has already been consumed.');
    const init = { status: this.status, statusText: this.statusText, headers: this.headers };
    return new ReceivedResponse(this.#content, init) as unknown as Response;
  }
}

/** The answer as the client's HTTP library hands it over. */
export function responseOf(answer: WireAnswer): Response {
  const headers: [string, string][] = [];
  for (const [name, value] of Object.entries(answer.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const each of value) headers.push([name, each]);
    else headers.push([name, String(value)]);
  }
  return new ReceivedResponse(answer.body, {
    status: answer.status,
    headers,
  }) as unknown as Response;
}
