import { XQUEUE_PATHS } from '@storm-lab/xqueue-protocol';
import { type Dispatcher, request } from 'undici';

function cookiesOf(headers: Record<string, string | string[] | undefined>): Map<string, string> {
  const raw = headers['set-cookie'];
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  const cookies = new Map<string, string>();
  for (const header of list) {
    const [pair = ''] = header.split(';');
    const index = pair.indexOf('=');
    if (index > 0) cookies.set(pair.slice(0, index), pair.slice(index + 1));
  }
  return cookies;
}

const RESULT_BODY = JSON.stringify({ correct: true, score: 1, msg: '<p>bench</p>' });

/**
 * One logged-in xqueue client (the real client's handshake: GET login for the CSRF cookie, POST
 * the form), reusable for many requests through any undici dispatcher.
 */
export class XQueueSession {
  private cookie = '';
  private csrf = '';

  constructor(
    private readonly baseUrl: string,
    private readonly dispatcher?: Dispatcher,
  ) {}

  async login(username: string, password: string): Promise<void> {
    const first = await request(new URL(XQUEUE_PATHS.login, this.baseUrl), {
      dispatcher: this.dispatcher,
    });
    await first.body.dump();
    const cookies = cookiesOf(first.headers);
    this.csrf = cookies.get('csrftoken') ?? '';
    const response = await request(new URL(XQUEUE_PATHS.login, this.baseUrl), {
      method: 'POST',
      dispatcher: this.dispatcher,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        cookie: `csrftoken=${this.csrf}`,
        'x-csrftoken': this.csrf,
        referer: this.baseUrl,
      },
      body: new URLSearchParams({ username, password }).toString(),
    });
    const text = await response.body.text();
    if (response.statusCode !== 200)
      throw new Error(`xqueue login failed: ${response.statusCode} ${text}`);
    for (const [name, value] of cookiesOf(response.headers)) cookies.set(name, value);
    this.cookie = [...cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    // The LMS rotates the CSRF token on login (as Django does); the real client re-reads it.
    this.csrf = cookies.get('csrftoken') ?? this.csrf;
  }

  /** Headers that authenticate a request of this session. */
  headers(): Record<string, string> {
    return { cookie: this.cookie, 'x-csrftoken': this.csrf, referer: this.baseUrl };
  }

  /** GET a path; resolves with the status and the parsed JSON body. */
  async get(path: string): Promise<{ status: number; body: unknown }> {
    const response = await request(new URL(path, this.baseUrl), {
      dispatcher: this.dispatcher,
      headers: this.headers(),
    });
    return { status: response.statusCode, body: await response.body.json() };
  }

  /**
   * One grading cycle: pull a submission and post a result for it. Resolves with 'graded',
   * 'empty' (queue empty) or 'error:<status>'.
   */
  async cycle(queue: string): Promise<string> {
    const pulled = await this.get(
      `${XQUEUE_PATHS.getSubmission}?queue_name=${encodeURIComponent(queue)}`,
    );
    const envelope = pulled.body as { return_code?: number; content?: unknown };
    if (pulled.status !== 200) return `error:${pulled.status}`;
    if (envelope.return_code !== 0) return 'empty';
    // As the real client: send xqueue_header back exactly as received (no re-encoding), and
    // keep the load generator's own CPU cost low, since it shares the cores with the server.
    let header: unknown;
    try {
      header = (JSON.parse(String(envelope.content)) as { xqueue_header?: unknown }).xqueue_header;
    } catch {
      return 'error:decode';
    }
    if (typeof header !== 'string') return 'error:decode';
    const response = await request(new URL(XQUEUE_PATHS.putResult, this.baseUrl), {
      method: 'POST',
      dispatcher: this.dispatcher,
      headers: { ...this.headers(), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        xqueue_header: header,
        xqueue_body: RESULT_BODY,
      }).toString(),
    });
    await response.body.dump();
    return response.statusCode === 200 ? 'graded' : `error:${response.statusCode}`;
  }
}
