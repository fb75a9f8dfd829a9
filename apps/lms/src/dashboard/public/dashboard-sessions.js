// The sessions panel: the live sessions of one account (by default the xqueue service account),
// sorted by client instance so an operator sees which replica or connection holds which
// session, with End and End all through the staff API. Plain ES module. User agents and
// instance ids come from whoever logged in: they go in through textContent only.
import { el } from './dashboard-view.js';

/** Shown for a missing value: upstream's xqueue-watcher sends no `X-Client-Instance`. */
export const NONE = '—';
const COLUMNS = 7;

/** "12 s ago", "3 min ago", "5 h ago", "2 d ago", from an ISO time and `now` in ms. */
export function ago(iso, now) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? `${hours} h ago` : `${Math.floor(hours / 24)} d ago`;
}

/** By client instance (`replica-2` before `replica-10`; none last), then oldest first. */
export function byInstance(a, b) {
  const x = a.client_instance;
  const y = b.client_instance;
  if (x !== y) {
    if (x === null) return 1;
    if (y === null) return -1;
    return x.localeCompare(y, 'en', { numeric: true }) || (x < y ? -1 : 1);
  }
  return a.created.localeCompare(b.created) || a.id.localeCompare(b.id);
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

/** One line above the table: how many sessions, on how many client instances. */
export function describeSessions(account, sessions) {
  if (sessions.length === 0) return `${account}: no live sessions`;
  const instances = new Set(sessions.map((s) => s.client_instance).filter((id) => id !== null));
  const without = sessions.filter((s) => s.client_instance === null).length;
  const parts = [plural(sessions.length, 'live session'), plural(instances.size, 'instance')];
  if (without > 0) parts.push(`${without} without an instance id`);
  return `${account}: ${parts.join(' · ')}`;
}

// Only writes what changed: a row that stays the same is left alone, so nothing flickers.
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function setTitle(node, title) {
  if (node.title !== title) node.title = title;
}

function sessionRow(onEnd) {
  const end = el('button', { type: 'button', className: 'secondary', textContent: 'End' });
  const row = el(
    'tr',
    {},
    el('td', {}, el('code', {}), ' ', el('span', { className: 'badge', hidden: true }, 'you')),
    el('td', { className: 'instance' }),
    el('td', { className: 'agent' }),
    el('td', {}),
    el('td', {}),
    el('td', {}),
    el('td', {}, end),
  );
  end.addEventListener('click', () => onEnd(row.dataset.id, end));
  return row;
}

function fillRow(row, session, now, firstOfInstance) {
  const [id, instance, agent, address, created, seen] = row.cells;
  row.dataset.id = session.id;
  row.dataset.instance = session.client_instance ?? '';
  row.classList.toggle('instance-start', firstOfInstance);
  setText(id.firstChild, session.id);
  id.lastChild.hidden = !session.current;
  setText(instance, session.client_instance ?? NONE);
  instance.classList.toggle('muted', session.client_instance === null);
  setText(agent, session.user_agent ?? NONE);
  setTitle(agent, session.user_agent ?? '');
  setText(address, session.address ?? NONE);
  setText(created, ago(session.created, now));
  setTitle(created, new Date(session.created).toLocaleString());
  setText(seen, ago(session.last_seen, now));
  setTitle(seen, new Date(session.last_seen).toLocaleString());
}

/** A one-cell row saying why the table is empty; kept while the text stays the same. */
export function renderMessage(tbody, text) {
  const only = tbody.rows.length === 1 ? tbody.rows[0] : null;
  if (only && !only.dataset.id && only.textContent === text) return;
  tbody.replaceChildren(el('tr', {}, el('td', { colSpan: COLUMNS, className: 'muted' }, text)));
}

/**
 * The sessions table, sorted by client instance. Rows are keyed by short id and kept across
 * refreshes, so the End button under a person's pointer is never swapped out.
 */
export function renderSessions(tbody, sessions, now, onEnd) {
  if (sessions.length === 0) {
    renderMessage(tbody, 'No live sessions.');
    return;
  }
  const kept = new Map([...tbody.rows].map((row) => [row.dataset.id, row]));
  const sorted = [...sessions].sort(byInstance);
  const rows = sorted.map((session, index) => {
    const row = kept.get(session.id) ?? sessionRow(onEnd);
    const previous = sorted[index - 1];
    fillRow(row, session, now, !previous || previous.client_instance !== session.client_instance);
    return row;
  });
  const same =
    rows.length === tbody.rows.length && rows.every((row, index) => tbody.rows[index] === row);
  if (!same) tbody.replaceChildren(...rows);
}

function setStatus(element, text, kind = '') {
  element.textContent = text;
  element.dataset.kind = kind;
}

/**
 * Wires the panel to the staff API. `api(method, path)` answers `{ ok, status, json }` and sends
 * the CSRF header; `ended(status)` says whether the staff session itself is gone (and handles
 * it); `now()` is the server's time in ms. Call `offer(names)` with the service accounts (the
 * first is shown until someone asks for another) and `refresh()` on the dashboard's cycle.
 */
export function createSessionsPanel({ api, ended, now }) {
  const form = document.getElementById('sessions-form');
  const input = form.elements.username;
  const endAll = document.getElementById('sessions-end-all');
  const status = document.getElementById('sessions-status');
  const summary = document.getElementById('sessions-summary');
  const tbody = document.querySelector('#sessions tbody');
  const choices = document.getElementById('service-accounts');
  let wanted = null; // the account asked for
  let shown = null; // the account whose rows are on screen: End acts on these
  let count = 0;
  // Bumped by every load and action, so an answer overtaken by a newer one is dropped.
  let generation = 0;

  const base = (account) => `/api/admin/users/${encodeURIComponent(account)}/sessions`;

  async function refresh() {
    if (wanted === null) return;
    const account = wanted;
    const ticket = ++generation;
    const { ok, status: code, json } = await api('GET', base(account));
    if (ticket !== generation || ended(code)) return;
    shown = account;
    if (!ok) {
      count = 0;
      endAll.disabled = true;
      setText(summary, '');
      renderMessage(tbody, code === 404 ? `No account named ${account}.` : `HTTP ${code}`);
      return;
    }
    count = json.sessions.length;
    endAll.disabled = count === 0;
    setText(summary, describeSessions(account, json.sessions));
    renderSessions(tbody, json.sessions, now(), endOne);
  }

  async function endOne(id, button) {
    const account = shown;
    button.disabled = true;
    generation += 1;
    const path = `${base(account)}/${encodeURIComponent(id)}`;
    const { ok, status: code, json } = await api('DELETE', path);
    if (ended(code)) return;
    if (ok) setStatus(status, `Ended session ${id} of ${account}.`, 'ok');
    else if (code === 404) setStatus(status, `Session ${id} of ${account} had already ended.`);
    else setStatus(status, `End ${id}: ${json.detail ?? `HTTP ${code}`}`, 'error');
    await refresh();
    button.disabled = false; // still there when the end failed
  }

  async function endEvery() {
    const account = shown;
    if (account === null || !window.confirm(`End all ${plural(count, 'session')} of ${account}?`))
      return;
    generation += 1;
    const { ok, status: code, json } = await api('POST', `${base(account)}/end-all`);
    if (ended(code)) return;
    if (ok) setStatus(status, `Ended ${plural(json.ended, 'session')} of ${account}.`, 'ok');
    else setStatus(status, `End all: ${json.detail ?? `HTTP ${code}`}`, 'error');
    await refresh();
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const account = input.value.trim();
    if (account === '') return;
    wanted = account;
    setStatus(status, '');
    void refresh();
  });
  endAll.addEventListener('click', () => void endEvery());

  return {
    refresh,
    offer(names) {
      if ([...choices.options].map((option) => option.value).join('\n') !== names.join('\n')) {
        choices.replaceChildren(...names.map((name) => el('option', { value: name })));
      }
      // The default, until someone types another account.
      if (wanted === null && input.value === '' && names.length > 0) {
        input.value = names[0];
        wanted = names[0];
      }
      if (wanted === null) renderMessage(tbody, 'Type an account and press Show.');
    },
  };
}
