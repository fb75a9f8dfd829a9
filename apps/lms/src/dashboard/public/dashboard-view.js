// Rendering for the storm dashboard: charts (uPlot, loaded by the page as a global), rate
// tiles, the alert banner and the tables. Plain ES module, no build step. Text goes in through
// textContent only, so account names and reasons can never inject markup.

/** Environment variable of each setting, as operators know them. */
export const SETTING_NAMES = [
  ['preventConcurrentLogins', 'PREVENT_CONCURRENT_LOGINS'],
  ['exemptUsernames', 'SINGLE_LOGIN_EXEMPT_USERNAMES'],
  ['exemptGroups', 'SINGLE_LOGIN_EXEMPT_GROUPS'],
  ['maxSessions', 'SINGLE_LOGIN_MAX_SESSIONS'],
  ['onLimit', 'SINGLE_LOGIN_ON_LIMIT'],
  ['scope', 'SINGLE_LOGIN_SCOPE'],
  ['rules', 'SINGLE_LOGIN_RULES'],
  ['dryRun', 'SINGLE_LOGIN_DRY_RUN'],
];

const COLORS = {
  logins: '#1f6fd1',
  forbidden: '#c62828',
  evictions: '#e07b00',
  graded: '#2e7d32',
  latency: '#00838f',
  queues: ['#6a1b9a', '#ad1457', '#4e342e', '#283593'],
};
const CHART_HEIGHT = 120;
/** Seconds the rate tiles average over: long enough to be steady, short enough to be "now". */
export const TILE_SECONDS = 5;

/** Builds an element: `el('td', { className: 'x' }, 'text', child)`. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'dataset') Object.assign(node.dataset, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

/** Whole numbers stay whole (0 is "0", which the eye looks for); small rates keep a decimal. */
export function formatRate(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  if (Number.isInteger(value)) return String(value);
  return value >= 10 ? String(Math.round(value)) : value.toFixed(1);
}

function formatSeconds(value) {
  return value < 1 ? value.toFixed(2) : formatRate(value);
}

function lineSeries(label, stroke, extra = {}) {
  return { label, stroke, width: 1.5, fill: `${stroke}22`, spanGaps: true, ...extra };
}

function chartOptions(width, series) {
  return {
    width,
    height: CHART_HEIGHT,
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
    axes: [{ space: 60, size: 28 }, { size: 42 }],
    cursor: { sync: { key: 'storm' } },
    legend: { show: true, live: true },
    series: [{}, ...series],
  };
}

function queueSeries(names) {
  return names.map((name, index) =>
    lineSeries(name, COLORS.queues[index % COLORS.queues.length], { fill: undefined }),
  );
}

/**
 * The six charts. `update(series)` redraws them with the latest data; the queue chart is
 * rebuilt when the set of queues changes.
 */
export function createCharts(uPlot) {
  const specs = {
    logins: [lineSeries('logins/s', COLORS.logins)],
    forbidden: [lineSeries('403s/s', COLORS.forbidden)],
    evictions: [lineSeries('evictions/s', COLORS.evictions)],
    graded: [lineSeries('graded/s', COLORS.graded)],
    latency: [lineSeries('latency s', COLORS.latency, { points: { show: true, size: 4 } })],
  };
  const charts = {};
  let queueNames = '';
  const widthOf = (key) => document.getElementById(`chart-${key}`).clientWidth;

  function make(key, series, data) {
    charts[key]?.destroy();
    const target = document.getElementById(`chart-${key}`);
    charts[key] = new uPlot(chartOptions(widthOf(key), series), data, target);
  }

  window.addEventListener('resize', () => {
    for (const [key, chart] of Object.entries(charts)) {
      chart.setSize({ width: widthOf(key), height: CHART_HEIGHT });
    }
  });

  return {
    update(series) {
      const columns = {
        logins: [series.t, series.logins],
        forbidden: [series.t, series.forbidden],
        evictions: [series.t, series.evictions],
        graded: [series.t, series.graded],
        latency: [series.t, series.latencySeconds],
      };
      for (const [key, data] of Object.entries(columns)) {
        if (charts[key]) charts[key].setData(data);
        else make(key, specs[key], data);
      }
      const names = Object.keys(series.queues);
      const queueData = [series.t, ...names.map((name) => series.queues[name])];
      if (names.join('\n') !== queueNames || !charts.queues) {
        queueNames = names.join('\n');
        make('queues', queueSeries(names), queueData);
      } else {
        charts.queues.setData(queueData);
      }
    },
  };
}

function mean(values) {
  return values.length === 0 ? 0 : values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Fills the rate tiles with the mean of the last few complete seconds. */
export function renderTiles(series) {
  const last = (values) => values.slice(-TILE_SECONDS);
  for (const key of ['logins', 'forbidden', 'evictions', 'graded']) {
    document.getElementById(`rate-${key}`).textContent = formatRate(mean(last(series[key])));
  }
  const latencies = last(series.latencySeconds).filter((value) => value !== null);
  document.getElementById('rate-latency').textContent =
    latencies.length === 0 ? '–' : formatSeconds(mean(latencies));
  const queued = Object.values(series.queues)
    .map((values) => values.findLast((value) => value !== null))
    .filter((value) => value !== undefined);
  document.getElementById('rate-queue').textContent =
    queued.length === 0 ? '–' : String(queued.reduce((sum, value) => sum + value, 0));
}

function describeExemption(exemption) {
  if (!exemption) return 'no';
  return exemption.by === 'username' ? 'by username' : `by group ${exemption.group}`;
}

function describeRule(rule, settings) {
  if (!settings.preventConcurrentLogins) return 'flag off: unlimited';
  const source = rule.source.kind === 'default' ? 'default' : `rule for ${rule.source.kind}`;
  return `${rule.maxSessions}, ${rule.onLimit}, ${rule.scope} (${source})`;
}

// The newest data of each banner line, for its button: a kept line outlives its first alert.
const latestAlert = new WeakMap();

function alertNode(alert, onExempt) {
  const rates = el('span', { className: 'rates' });
  if (alert.exemption) {
    return el(
      'div',
      { className: 'alert subsiding' },
      el('b', {}, alert.account),
      ` is exempt now (${describeExemption(alert.exemption)}). The last minute still holds `,
      rates,
      '; the alert clears as they age out.',
    );
  }
  const button = el('button', { type: 'button', textContent: `Exempt ${alert.account}…` });
  const node = el(
    'div',
    { className: 'alert storm' },
    el('span', {}, 'Login storm on ', el('b', {}, alert.account), ': ', rates, '. Fix: '),
    el('code', {}, alert.suggestion),
    ' ',
    button,
  );
  button.addEventListener('click', () => onExempt(latestAlert.get(node)));
  return node;
}

/**
 * The banner: one line per storming account, with a button that fills in the exemption. A line
 * is kept while its account and state stay the same and only its numbers change, so the button
 * under a person's pointer is not swapped out between mouse down and up.
 */
export function renderAlerts(container, alerts, onExempt) {
  const kept = new Map([...container.children].map((node) => [node.dataset.key, node]));
  const nodes = alerts.map((alert) => {
    const key = `${alert.account}\n${JSON.stringify(alert.exemption)}`;
    const node = kept.get(key) ?? alertNode(alert, onExempt);
    node.dataset.key = key;
    latestAlert.set(node, alert);
    node.dataset.account = alert.account;
    node.querySelector('.rates').textContent =
      `${formatRate(alert.evictionsPerMinute)} evictions/min, ${formatRate(alert.loginsPerMinute)} logins/min (alert at ${alert.thresholdPerMinute}/min)`;
    return node;
  });
  const same =
    nodes.length === container.children.length &&
    nodes.every((node, index) => container.children[index] === node);
  if (!same) container.replaceChildren(...nodes);
}

function rowClass(row) {
  if (!row.storming) return '';
  // Exempt already: the window still holds the storm's evictions, but nothing new happens.
  return row.exemption ? 'subsiding' : 'storming';
}

/** The accounts table; storming rows are highlighted. */
export function renderAccounts(tbody, accounts, settings) {
  if (accounts.length === 0) {
    tbody.replaceChildren(
      el('tr', {}, el('td', { colSpan: 6, className: 'muted' }, 'No live sessions.')),
    );
    return;
  }
  tbody.replaceChildren(
    ...accounts.map((row) =>
      el(
        'tr',
        { className: rowClass(row), dataset: { account: row.account } },
        el('td', {}, row.account),
        el('td', { className: 'num' }, String(row.liveSessions)),
        el('td', { className: 'num' }, formatRate(row.loginsPerMinute)),
        el('td', { className: 'num' }, formatRate(row.evictionsPerMinute)),
        el('td', {}, describeExemption(row.exemption)),
        el('td', {}, describeRule(row.rule, settings)),
      ),
    ),
  );
}

function showValue(value) {
  if (Array.isArray(value)) {
    if (value.length === 0) return '(none)';
    return value.every((item) => typeof item === 'string')
      ? value.join(', ')
      : JSON.stringify(value);
  }
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  return String(value);
}

/** One line for the header: what is enforced and who is exempt. */
export function policySummary(settings) {
  if (!settings.preventConcurrentLogins) return 'Single login OFF';
  const exempt = [...settings.exemptUsernames, ...settings.exemptGroups.map((g) => `group ${g}`)];
  const dry = settings.dryRun ? ' (dry run)' : '';
  return `Single login ON${dry} · exempt: ${exempt.length ? exempt.join(', ') : 'nobody'}`;
}

/** The current settings, each under its environment name; saved overrides are marked. */
export function renderSettings(dl, view) {
  const rows = SETTING_NAMES.flatMap(([key, env]) => [
    el(
      'dt',
      {},
      el('code', {}, env),
      key in view.overrides ? el('span', { className: 'badge' }, 'saved') : null,
    ),
    el('dd', {}, showValue(view.settings[key])),
  ]);
  const source =
    view.source.kind === 'environment'
      ? 'From the environment (nothing saved).'
      : `Saved by ${view.source.updatedBy} at ${new Date(view.source.updatedAt).toLocaleString()}; overrides the environment.`;
  dl.replaceChildren(...rows, el('dt', {}, 'Source'), el('dd', {}, source));
}

function changes(before, after) {
  const keys = SETTING_NAMES.map(([key]) => key).filter(
    (key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]),
  );
  if (keys.length === 0) return 'no change';
  return keys
    .map((key) => `${key}: ${showValue(before[key])} → ${showValue(after[key])}`)
    .join('; ');
}

/** The audit list, newest first. */
export function renderAudit(tbody, audit) {
  if (audit.length === 0) {
    tbody.replaceChildren(
      el('tr', {}, el('td', { colSpan: 5, className: 'muted' }, 'No changes yet.')),
    );
    return;
  }
  tbody.replaceChildren(
    ...audit.map((entry) =>
      el(
        'tr',
        {},
        el('td', {}, new Date(entry.at).toLocaleString()),
        el('td', {}, entry.actor),
        el('td', {}, entry.action),
        el('td', {}, entry.reason),
        el('td', {}, changes(entry.before, entry.after)),
      ),
    ),
  );
}
