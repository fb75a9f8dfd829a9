// The storm dashboard's behaviour: polls the staff-only admin API, redraws, and sends policy
// changes with Django's CSRF header. Plain ES module, served by the LMS; uPlot is a global
// from the classic script the page loads first.

import { createSessionsPanel } from './dashboard-sessions.js';
import {
  createCharts,
  policySummary,
  renderAccounts,
  renderAlerts,
  renderAudit,
  renderSettings,
  renderTiles,
} from './dashboard-view.js';

const STATS_INTERVAL_MS = 1000;
const POLICY_INTERVAL_MS = 5000;

const form = document.getElementById('policy-form');
const formStatus = document.getElementById('form-status');
const connection = document.getElementById('connection');
const charts = createCharts(globalThis.uPlot);
const windowSelect = document.getElementById('window');
let stopped = false;
let current = null;
// The server's clock minus ours, from the last stats answer: "last seen" is told in its time.
let clockOffsetMs = 0;

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : '';
}

async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRFToken'] = csrfToken();
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, json };
}

function setStatus(element, text, kind = '') {
  element.textContent = text;
  element.dataset.kind = kind;
}

function sessionEnded(status) {
  if (status !== 401 && status !== 403) return false;
  stopped = true;
  connection.replaceChildren('Session ended or not staff: ');
  const link = document.createElement('a');
  link.href = '/dashboard/login';
  link.textContent = 'log in again';
  connection.append(link);
  connection.dataset.kind = 'error';
  return true;
}

function list(text) {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
}

function fillForm(settings, force = false) {
  // Never overwrite what a person is typing; a save or reset clears the flag.
  if (form.dataset.dirty === 'true' && !force) return;
  form.elements.preventConcurrentLogins.checked = settings.preventConcurrentLogins;
  form.elements.dryRun.checked = settings.dryRun;
  form.elements.exemptUsernames.value = settings.exemptUsernames.join(', ');
  form.elements.exemptGroups.value = settings.exemptGroups.join(', ');
  form.elements.rules.value = settings.rules.length ? JSON.stringify(settings.rules) : '[]';
  form.dataset.dirty = 'false';
}

// The audit page shown: null for the newest changes (kept fresh by the poll), else the id the
// older page starts below (GET /api/admin/policy?before=<id>).
let auditBefore = null;
let auditNext = null;
const auditNewest = document.getElementById('audit-newest');
const auditOlder = document.getElementById('audit-older');

function applyPolicy(view, force = false) {
  current = view.settings;
  renderSettings(document.getElementById('settings'), view);
  renderAudit(document.querySelector('#audit tbody'), view.audit);
  auditNext = view.auditNext;
  auditOlder.disabled = auditNext === null;
  auditNewest.disabled = auditBefore === null;
  fillForm(view.settings, force);
}

function prefillExemption(alert) {
  form.elements.exemptUsernames.value = alert.fix.exemptUsernames.join(', ');
  form.elements.reason.value = `Login storm on ${alert.account}: ${Math.round(alert.evictionsPerMinute)} evictions/min`;
  form.dataset.dirty = 'true';
  setStatus(formStatus, `Exemption for ${alert.account} filled in: check the reason, then Save.`);
  form.scrollIntoView({ block: 'center' });
  form.elements.reason.focus();
}

async function refreshStats() {
  const seconds = windowSelect.value;
  const { ok, status, json } = await api('GET', `/api/admin/stats?seconds=${seconds}`);
  if (!ok) {
    if (!sessionEnded(status)) setStatus(connection, `stats: ${json.detail ?? status}`, 'error');
    return;
  }
  charts.update(json.series);
  renderTiles(json.series);
  renderAlerts(document.getElementById('alerts'), json.alerts, prefillExemption);
  renderAccounts(document.querySelector('#accounts tbody'), json.accounts, json.policy.settings);
  current = json.policy.settings;
  clockOffsetMs = json.at - Date.now();
  sessions.offer(json.serviceAccounts);
  document.getElementById('policy-summary').textContent = policySummary(json.policy.settings);
  setStatus(connection, `live · ${new Date(json.at).toLocaleTimeString()}`, 'ok');
}

const sessions = createSessionsPanel({
  api,
  ended: sessionEnded,
  now: () => Date.now() + clockOffsetMs,
});

async function refreshPolicy() {
  const query = auditBefore === null ? '' : `?before=${auditBefore}`;
  const { ok, status, json } = await api('GET', `/api/admin/policy${query}`);
  if (ok) applyPolicy(json);
  else sessionEnded(status);
}

function showAuditPage(before) {
  auditBefore = before;
  void refreshPolicy();
}

function every(intervalMs, task) {
  // Chained timeouts, not setInterval: a slow answer never piles requests up.
  const run = async () => {
    try {
      await task();
    } catch (error) {
      setStatus(connection, `connection lost (${error.message}); retrying`, 'error');
    }
    if (!stopped) setTimeout(run, intervalMs);
  };
  void run();
}

async function save(event) {
  event.preventDefault();
  let rules;
  try {
    rules = JSON.parse(form.elements.rules.value.trim() || '[]');
  } catch (error) {
    setStatus(formStatus, `Rules must be JSON: ${error.message}`, 'error');
    return;
  }
  const edited = {
    preventConcurrentLogins: form.elements.preventConcurrentLogins.checked,
    dryRun: form.elements.dryRun.checked,
    exemptUsernames: list(form.elements.exemptUsernames.value),
    exemptGroups: list(form.elements.exemptGroups.value),
    rules,
  };
  // Send only what the person changed, so the saved overrides and the audit say what was meant.
  const settings = Object.fromEntries(
    Object.entries(edited).filter(
      ([key, value]) => !current || JSON.stringify(value) !== JSON.stringify(current[key]),
    ),
  );
  if (Object.keys(settings).length === 0) {
    setStatus(formStatus, 'Nothing changed: the policy already says this.', 'error');
    return;
  }
  const reason = form.elements.reason.value;
  const { ok, status, json } = await api('PUT', '/api/admin/policy', { settings, reason });
  if (!ok) {
    if (!sessionEnded(status)) setStatus(formStatus, json.detail ?? `HTTP ${status}`, 'error');
    return;
  }
  form.elements.reason.value = '';
  auditBefore = null;
  applyPolicy(json, true);
  setStatus(formStatus, `Saved at ${new Date().toLocaleTimeString()}. Logins now use it.`, 'ok');
}

async function reset() {
  if (!form.elements.reason.reportValidity()) return;
  const reason = form.elements.reason.value;
  const { ok, status, json } = await api('DELETE', '/api/admin/policy', { reason });
  if (!ok) {
    if (!sessionEnded(status)) setStatus(formStatus, json.detail ?? `HTTP ${status}`, 'error');
    return;
  }
  form.elements.reason.value = '';
  auditBefore = null;
  applyPolicy(json, true);
  setStatus(formStatus, 'Reset: the environment settings apply again.', 'ok');
}

form.addEventListener('input', () => {
  form.dataset.dirty = 'true';
});
form.addEventListener('submit', (event) => void save(event));
document.getElementById('reset-policy').addEventListener('click', () => void reset());
auditOlder.addEventListener('click', () => showAuditPage(auditNext));
auditNewest.addEventListener('click', () => showAuditPage(null));
document.getElementById('logout').addEventListener('click', async () => {
  await api('POST', '/logout');
  window.location.assign('/dashboard/login');
});

// The sessions panel follows the stats, which name its default account.
every(STATS_INTERVAL_MS, async () => {
  await refreshStats();
  if (!stopped) await sessions.refresh();
});
every(POLICY_INTERVAL_MS, refreshPolicy);
