import { afterEach, describe, expect, it } from 'vitest';
import { TestClient } from '../testing/client.ts';
import { createTestLms, type TestLms } from '../testing/fixtures.ts';

let lms: TestLms | undefined;
afterEach(async () => {
  await lms?.close();
  lms = undefined;
});

async function browser(login?: [string, string]) {
  lms ??= await createTestLms();
  const client = new TestClient(lms.fetcher);
  if (login) expect((await client.webLogin(...login)).status).toBe(200);
  return client;
}

describe('GET /dashboard', () => {
  it('sends anonymous visitors to a login page that carries the CSRF token', async () => {
    const anonymous = await browser();
    const response = await anonymous.get('/dashboard');
    expect(response.status).toBe(302);
    expect(response.headers.get('location')).toBe('/dashboard/login');
    const page = await (await anonymous.get('/dashboard/login')).text();
    expect(page).toContain('action="/login"');
    expect(page).toContain(`value="${anonymous.cookies.get('csrftoken')}"`);
    expect(page).not.toContain('policy-form');
  });

  it('tells a user who is not staff that the page is staff only, with no data', async () => {
    const student = await browser(['student1', 'student-pass']);
    const response = await student.get('/dashboard');
    expect(response.status).toBe(403);
    const page = await response.text();
    expect(page).toContain('who is not staff');
    expect(page).not.toContain('policy-form');
  });

  it('serves staff the page with a strict content security policy', async () => {
    const staff = await browser(['staff', 'staff-pass']);
    const response = await staff.get('/dashboard');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(response.headers.get('cache-control')).toBe('no-store');
    const page = await response.text();
    expect(page).toContain('<script src="/dashboard/assets/uplot.js"></script>');
    expect(page).toContain('type="module" src="/dashboard/assets/dashboard.js"');
    expect(page).toContain('id="policy-form"');
    expect(page).toContain('Signed in as <b>staff</b>');
    // Only our own files: no inline script to allow, no CDN.
    expect(page).not.toMatch(/<script>(?!<\/script>)|https?:\/\//);
  });
});

describe('GET /dashboard/assets/:name', () => {
  it.each([
    ['uplot.js', 'text/javascript', 'uPlot'],
    ['uplot.css', 'text/css', '.uplot'],
    ['dashboard.js', 'text/javascript', '/api/admin/stats'],
    ['dashboard-view.js', 'text/javascript', 'export function createCharts'],
    ['dashboard-login.js', 'text/javascript', "fetch('/login'"],
    ['dashboard.css', 'text/css', '.alert.storm'],
  ])('serves %s as %s from the LMS itself', async (name, type, content) => {
    const anonymous = await browser();
    const response = await anonymous.get(`/dashboard/assets/${name}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain(type);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await response.text()).toContain(content);
  });

  it.each(['nope.js', '..%2Fpackage.json', '..%2F..%2Fsrc%2Fapp.ts', 'constructor', '__proto__'])(
    'answers 404 for %s',
    async (name) => {
      const anonymous = await browser();
      expect((await anonymous.get(`/dashboard/assets/${name}`)).status).toBe(404);
    },
  );
});
