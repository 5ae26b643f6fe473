// The live metrics dashboard (GET /api/dashboard): asks for the app's read key (kept in sessionStorage),
// then reads GET /api/metrics (workers/sinks/metrics/api.py) every REFRESH_MS and draws what it answers.
// Every number on the page is one of the API's, unchanged, so a test can compare the two.
import uPlot from 'uplot';
import css from 'uplot/dist/uPlot.min.css';

const REFRESH_MS = 5000;
const COUNTERS = ['events', 'humans', 'bots', 'uniques', 'link_clicks', 'rejected', 'failed'];
const TOPS = [['link', 'Top links'], ['page', 'Pages'], ['referrer', 'Referrers'], ['country', 'Countries'], ['device', 'Devices']];
const params = new URLSearchParams(location.search);
const appId = params.get('appId') || 'demo';
const keyName = `hubcap.readKey.${appId}`;

const style = document.createElement('style');
style.textContent = `${css}
body{font:14px system-ui,sans-serif;margin:1.5rem;color:#222}h1{font-size:1.3rem}
.tiles{display:flex;gap:.8rem;flex-wrap:wrap}.tile{border:1px solid #ddd;border-radius:6px;padding:.5rem .8rem;min-width:6rem}
.tile b{display:block;font-size:1.4rem}.tops{display:grid;grid-template-columns:repeat(auto-fill,minmax(14rem,1fr));gap:1rem}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:2px 6px;border-bottom:1px solid #eee}
td.n{text-align:right}.error{color:#b00}#status{color:#666}`;
document.head.appendChild(style);

const root = document.getElementById('dashboard');
let chart = null;
let timer = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function askForKey(message) {
  clearInterval(timer);
  const input = el('input', { id: 'read-key', type: 'password', placeholder: 'read key', autocomplete: 'off' });
  const form = el('form', { id: 'key-form' }, el('label', { for: 'read-key' }, `Read key of ${appId}: `), input, el('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(keyName, input.value.trim());
    start();
  });
  root.replaceChildren(el('h1', {}, `hubcap · ${appId}`), ...(message ? [el('p', { class: 'error', id: 'key-error' }, message)] : []), form);
}

function layout() {
  const tiles = el('div', { class: 'tiles' }, ...COUNTERS.map((name) => el('div', { class: 'tile' }, name.replace('_', ' '), el('b', { 'data-total': name }, '…'))));
  const tops = el('div', { class: 'tops' }, ...TOPS.map(([by, title]) => el('section', {}, el('h2', {}, title), el('table', { 'data-top': by }))));
  const errors = el('section', {}, el('h2', {}, 'Latest rejected and failed'), el('table', { id: 'errors' }));
  root.replaceChildren(el('h1', {}, `hubcap · ${appId} · last hour`), el('p', { id: 'status' }, 'loading…'), tiles, el('div', { id: 'chart' }), tops, errors);
  chart = new uPlot(
    { title: 'Events per minute', width: Math.min(960, innerWidth - 40), height: 260, series: [{}, { label: 'humans', stroke: '#2a7', width: 2 }, { label: 'bots', stroke: '#c53', width: 2 }] },
    [[], [], []],
    document.getElementById('chart'),
  );
}

function rows(table, items, cells) {
  table.replaceChildren(...items.map((item) => el('tr', {}, ...cells(item))));
}

function draw(body) {
  for (const name of COUNTERS) root.querySelector(`[data-total="${name}"]`).textContent = String(body.totals[name]);
  const times = body.series.map((p) => Date.parse(p.t) / 1000);
  chart.setData([times, body.series.map((p) => p.humans), body.series.map((p) => p.bots)]);
  for (const [by] of TOPS) {
    rows(root.querySelector(`[data-top="${by}"]`), body.top[by] || [], (t) => [
      el('td', { 'data-value': '' }, t.value),
      el('td', { class: 'n', 'data-events': '' }, String(t.events)),
    ]);
  }
  rows(document.getElementById('errors'), body.latest_errors, (e) => [
    el('td', {}, e.t), el('td', {}, e.kind), el('td', {}, e.code), el('td', {}, e.event_type || ''), el('td', {}, e.message),
  ]);
  document.getElementById('status').textContent = `${body.from} – ${body.to} · updated ${new Date().toLocaleTimeString()}`;
  root.setAttribute('data-to', body.to);
}

async function refresh() {
  const key = sessionStorage.getItem(keyName);
  const by = TOPS.map(([name]) => name).join(',');
  let response;
  try {
    response = await fetch(`/api/metrics?appId=${encodeURIComponent(appId)}&step=minute&by=${by}`, { headers: { Authorization: `Bearer ${key}` } });
  } catch (error) {
    document.getElementById('status').textContent = `cannot reach /api/metrics: ${error}`;
    return;
  }
  if (response.status === 401 || response.status === 403) {
    sessionStorage.removeItem(keyName);
    askForKey((await response.json()).message);
    return;
  }
  if (!response.ok) {
    document.getElementById('status').textContent = `/api/metrics answered ${response.status}`;
    return;
  }
  draw(await response.json());
}

function start() {
  layout();
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

if (sessionStorage.getItem(keyName)) start();
else askForKey('');
