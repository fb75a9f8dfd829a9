import { afterEach, describe, expect, it } from 'vitest';
import { type LocalLms, startLms } from './lms.ts';

const TOKEN = 'lab-metrics-token-0123456789';
let lms: LocalLms | undefined;
const saved = process.env.METRICS_TOKEN;

afterEach(async () => {
  await lms?.stop();
  lms = undefined;
  if (saved === undefined) delete process.env.METRICS_TOKEN;
  else process.env.METRICS_TOKEN = saved;
});

describe('startLms', { timeout: 60_000 }, () => {
  it("keeps /metrics open to the lab's scrapers when the shell exports METRICS_TOKEN", async () => {
    process.env.METRICS_TOKEN = TOKEN;
    lms = await startLms({ env: { PASSWORD_HASH_ITERATIONS: '1000', LOG_LEVEL: 'warn' } });
    expect((await fetch(new URL('/metrics', lms.url))).status).toBe(200);
  });

  it('protects /metrics when the caller gives METRICS_TOKEN', async () => {
    lms = await startLms({
      env: { PASSWORD_HASH_ITERATIONS: '1000', LOG_LEVEL: 'warn', METRICS_TOKEN: TOKEN },
    });
    expect((await fetch(new URL('/metrics', lms.url))).status).toBe(401);
    const authorized = await fetch(new URL('/metrics', lms.url), {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(authorized.status).toBe(200);
  });
});
