import { html } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import { CSRF_FIELD } from '../http/csrf.ts';

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/**
 * Only our own files: no inline script or style, no eval, no third-party origin. uPlot sets
 * styles through the CSSOM, which this allows.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const ASSETS = '/dashboard/assets';

function layout(title: string, head: Html, body: Html) {
  // `data:,` as the icon: without it the browser asks for /favicon.ico and logs the 404.
  return html`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>${title}</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="${ASSETS}/dashboard.css">
    ${head}
  </head>
  <body>
    ${body}
  </body>
</html>`;
}

const CHARTS = [
  ['logins', 'Logins per second'],
  ['forbidden', '403s per second (xqueue)'],
  ['evictions', 'Evictions per second'],
  ['graded', 'Graded per second'],
  ['queues', 'Queue length'],
  ['latency', 'Grading latency (s)'],
] as const;

const TILES = [
  ['logins', 'logins/s'],
  ['forbidden', '403s/s'],
  ['evictions', 'evictions/s'],
  ['graded', 'graded/s'],
  ['queue', 'queued'],
  ['latency', 'latency s'],
] as const;

function policyForm() {
  return html`<form id="policy-form" class="policy-form" autocomplete="off">
  <label class="check"><input type="checkbox" name="preventConcurrentLogins">
    Single login enforced <code>PREVENT_CONCURRENT_LOGINS</code></label>
  <label class="check"><input type="checkbox" name="dryRun">
    Dry run (count, evict nothing) <code>SINGLE_LOGIN_DRY_RUN</code></label>
  <label>Exempt usernames <code>SINGLE_LOGIN_EXEMPT_USERNAMES</code>
    <input name="exemptUsernames" placeholder="comma-separated, e.g. xqueue_svc"></label>
  <label>Exempt groups <code>SINGLE_LOGIN_EXEMPT_GROUPS</code>
    <input name="exemptGroups" placeholder="comma-separated, e.g. xqueue"></label>
  <label>Per-account rules (JSON) <code>SINGLE_LOGIN_RULES</code>
    <textarea name="rules" rows="3" spellcheck="false"></textarea></label>
  <label>Reason (required, kept in the audit list)
    <input name="reason" required maxlength="500" placeholder="why this change"></label>
  <div class="buttons">
    <button type="submit">Save policy</button>
    <button type="button" id="reset-policy" class="secondary">Reset to environment</button>
  </div>
  <p id="form-status" class="form-status" role="status"></p>
</form>`;
}

function sessionsPanel() {
  return html`<section class="panel" aria-labelledby="sessions-title">
    <div class="panel-head">
      <h2 id="sessions-title">Sessions</h2>
      <form id="sessions-form" class="sessions-form" autocomplete="off">
        <label>Account <input name="username" class="account" required maxlength="150" list="service-accounts"
          placeholder="username, e.g. xqueue_svc" spellcheck="false"></label>
        <datalist id="service-accounts"></datalist>
        <button type="submit" class="secondary">Show</button>
        <button type="button" id="sessions-end-all" class="danger" disabled>End all</button>
      </form>
      <span id="sessions-summary" class="muted"></span>
    </div>
    <p id="sessions-status" class="form-status" role="status"></p>
    <table id="sessions" class="grid sessions">
      <thead><tr><th>Session</th><th>Client instance</th><th>User agent</th><th>Address</th><th>Created</th><th>Last seen</th><th></th></tr></thead>
      <tbody><tr><td colspan="7" class="muted">loading…</td></tr></tbody>
    </table>
  </section>`;
}

/**
 * The dashboard for a staff user: the skeleton the browser module fills from the admin API.
 *
 * @example
 * c.html(dashboardPage('staff'));
 */
export function dashboardPage(username: string) {
  const head = html`<link rel="stylesheet" href="${ASSETS}/uplot.css">
    <script src="${ASSETS}/uplot.js"></script>
    <script type="module" src="${ASSETS}/dashboard.js"></script>`;
  const body = html`<header class="top">
  <h1>Login storm dashboard</h1>
  <span id="policy-summary" class="summary">loading…</span>
  <label class="window">Window
    <select id="window">
      <option value="60">1 min</option>
      <option value="300" selected>5 min</option>
      <option value="600">10 min</option>
    </select></label>
  <span id="connection" class="connection"></span>
  <span class="who">Signed in as <b>${username}</b>
    <button type="button" id="logout" class="secondary">Log out</button></span>
</header>
<main>
  <section id="alerts" class="alerts" aria-live="polite" aria-relevant="additions"></section>
  <section class="tiles" aria-label="Rates over the last 5 seconds">
    ${TILES.map(
      ([key, label]) =>
        html`<div class="tile"><span class="value" id="rate-${key}" data-testid="rate-${key}">–</span><span class="label">${label}</span></div>`,
    )}
  </section>
  <section class="charts" aria-label="Per second over the chosen window">
    ${CHARTS.map(
      ([key, title]) =>
        html`<figure class="chart"><figcaption>${title}</figcaption><div id="chart-${key}"></div></figure>`,
    )}
  </section>
  <div class="columns">
    <section class="panel">
      <h2>Accounts</h2>
      <table id="accounts" class="grid">
        <thead><tr><th>Account</th><th>Live sessions</th><th>Logins/min</th><th>Evictions/min</th><th>Exempt</th><th>Limit</th></tr></thead>
        <tbody><tr><td colspan="6" class="muted">loading…</td></tr></tbody>
      </table>
    </section>
    <section class="panel">
      <h2>Policy now</h2>
      <dl id="settings" class="settings"></dl>
      <h2>Change the policy</h2>
      ${policyForm()}
    </section>
  </div>
  ${sessionsPanel()}
  <section class="panel">
    <div class="panel-head">
      <h2>Policy changes</h2>
      <button type="button" id="audit-newest" class="secondary" disabled>Newest</button>
      <button type="button" id="audit-older" class="secondary" disabled>Older</button>
    </div>
    <table id="audit" class="grid">
      <thead><tr><th>When</th><th>Who</th><th>Action</th><th>Reason</th><th>Change</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>`;
  return layout('Login storm dashboard', head, body);
}

/**
 * The staff login page. The module posts to the LMS's own `POST /login` (JSON, `X-CSRFToken`);
 * without script the form posts there too, with Django's form field.
 *
 * @example
 * c.html(loginPage(ensureCsrfCookie(c), null));
 */
export function loginPage(csrfToken: string, signedInAs: string | null) {
  const head = html`<script type="module" src="${ASSETS}/dashboard-login.js"></script>`;
  const note = signedInAs
    ? html`<p class="warning">Signed in as <b>${signedInAs}</b>, who is not staff. Log in as a staff user to see the dashboard.</p>`
    : '';
  const body = html`<main class="login">
  <h1>Storm dashboard</h1>
  <p class="muted">Staff only.</p>
  ${note}
  <form id="login-form" method="post" action="/login">
    <input type="hidden" name="${CSRF_FIELD}" value="${csrfToken}">
    <label>Username <input name="username" autocomplete="username" required autofocus></label>
    <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
    <button type="submit">Log in</button>
    <p id="login-status" class="form-status" role="status"></p>
  </form>
</main>`;
  return layout('Log in · Storm dashboard', head, body);
}
