import { describe, expect, it } from 'vitest';
import { responseOf, wireServer } from './wire.ts';

/** An app that says what it received. */
async function echo(request: Request, env: unknown) {
  const { incoming } = env as { incoming: { socket: { remoteAddress: string } } };
  return Response.json(
    {
      method: request.method,
      url: request.url,
      length: request.headers.get('content-length'),
      cookie: request.headers.get('cookie'),
      body: await request.text(),
      from: incoming.socket.remoteAddress,
    },
    {
      headers: [
        ['set-cookie', 'a=1; Path=/'],
        ['set-cookie', 'b=2; Path=/'],
      ],
    },
  );
}

describe('wireServer', () => {
  it('hands the app a request as the socket carries it, and keeps what it answers', async () => {
    const serve = wireServer(echo);
    const answer = await serve({
      url: 'http://lms.sim/xqueue/put_result/?x=1',
      init: {
        method: 'POST',
        headers: { Cookie: 'sessionid=s', 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'score=1&msg=%C3%A9',
      },
      remoteAddress: '10.0.0.7',
    });
    expect(answer.status).toBe(200);
    expect(answer.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; Path=/']);
    expect(JSON.parse(String(answer.body))).toEqual({
      method: 'POST',
      url: 'http://lms.sim/xqueue/put_result/?x=1',
      length: '18',
      cookie: 'sessionid=s',
      body: 'score=1&msg=%C3%A9',
      from: '10.0.0.7',
    });
  });
});

describe('responseOf', () => {
  const answer = {
    status: 403,
    headers: { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] },
    body: '{"detail":"é"}',
  };

  it('reads as a fetch Response: status, headers, each cookie, the body once', async () => {
    const response = responseOf(answer);
    expect(response).toBeInstanceOf(Response);
    expect([response.status, response.ok]).toEqual([403, false]);
    expect(response.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(response.bodyUsed).toBe(false);
    expect(await response.clone().json()).toEqual({ detail: 'é' });
    expect(await response.text()).toBe('{"detail":"é"}');
    expect(response.bodyUsed).toBe(true);
    await expect(response.arrayBuffer()).rejects.toThrow(TypeError);
  });

  it('gives the same bytes as a fetch Response would', async () => {
    const bytes = new Uint8Array(
      await responseOf({ ...answer, body: Buffer.from('é') }).arrayBuffer(),
    );
    expect(bytes).toEqual(new Uint8Array(await new Response('é').arrayBuffer()));
    expect(await responseOf({ ...answer, body: null }).text()).toBe('');
  });
});
