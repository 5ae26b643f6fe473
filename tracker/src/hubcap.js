// hubcap web tracker. Size and privacy goals: ../ARCHITECTURE.md. The budget is 2 KB min+gzip, so the
// code prefers short forms; comments say why a choice was made.
const w = window;
const d = document;
const n = navigator;
const loc = location;
const now = Date.now;
// Storage keys (written inline, which gzips smaller):
//   localStorage   hubcap_q  batches the collector has not answered yet (write-ahead, bounded)
//                  hubcap_d  device id, only with consent
//                  hubcap_o  the visitor opted out
//   sessionStorage hubcap_s  session id, last activity, bundle sequence, identified user

let cfg;
let off = 1; // nothing is collected until init has checked opt-out, DNT, GPC and localhost
let q = [];
let timer;
let last;
let ref = d.referrer;
let ses = {};
let busy = {}; // first event_id of each batch this page is sending, so a resend never doubles one
let shown = now();
let act = 0;
let depth = 0;

// Storage can throw (disabled cookies, private modes, quota): the tracker then works without it.
// Writing null clears a key: reading it back gives null.
const st = (session, key, val) => {
  try {
    const s = session ? sessionStorage : localStorage;
    return val === undefined ? JSON.parse(s[key]) : (s[key] = JSON.stringify(val));
  } catch (e) {}
};

const hex = (a) => [...a].map((x) => (x + 256).toString(16).slice(1)).join('');

// crypto.randomUUID exists only in secure contexts; on plain http 128 random bits in hex serve as well.
const uuid = () => crypto.randomUUID?.() || hex(crypto.getRandomValues(new Uint8Array(16)));

const session = () => {
  const t = now();
  if (!(t - ses.t < 18e5)) ses.i = uuid();
  ses.t = t;
  st(1, 'hubcap_s', ses);
  return ses.i;
};

const device = () => {
  if (!cfg.consent?.device) return void st(0, 'hubcap_d', null);
  const id = st(0, 'hubcap_d') || uuid();
  st(0, 'hubcap_d', id);
  return id;
};

const track = (type, attrs) => {
  if (off) return;
  const e = {
    event_type: type,
    event_id: uuid(),
    timestamp: now(),
    app_id: cfg.appId,
    platform: 'Web',
    page_url: loc.href,
    page_title: d.title,
    page_referrer: ref,
    screen_width: screen.width,
    screen_height: screen.height,
    viewport_width: innerWidth,
    viewport_height: innerHeight,
    locale: n.language,
    system_language: n.language.split('-')[0],
    zone_offset: new Date().getTimezoneOffset() * -6e4,
    sdk_name: 'hubcap-web',
    sdk_version: __VERSION__,
    session_id: session(),
    device_id: device(),
    user: ses.u,
    attributes: { ...attrs },
  };
  // The enrichment's bot check reads this hint; automated browsers set navigator.webdriver.
  if (n.webdriver) e.attributes._webdriver = true;
  q.push(e);
  q.length > 9 ? flush() : (timer = timer || setTimeout(flush, 2e3));
};

const endpoint = () => {
  ses.n = ~~ses.n + 1;
  st(1, 'hubcap_s', ses);
  return cfg.endpoint + '?appId=' + cfg.appId + '&platform=Web&event_bundle_sequence_id=' + ses.n;
};

// Write-ahead: a batch stays in localStorage until the collector has answered for it, so a reload, a
// crash or an outage resends it with the same event_ids (the pipeline dedups on them). When the store
// would pass 256 KB the oldest batches go.
const save = (b, done) => {
  const s = (st(0, 'hubcap_q') || []).filter((x) => x[0].event_id != b[0].event_id);
  done || s.push(b);
  while (JSON.stringify(s).length > 262144) s.shift();
  st(0, 'hubcap_q', s);
};

const send = async (b, tries) => {
  if (off) return; // opted out meanwhile: pending retries stop too
  const id = b[0].event_id;
  let body = new TextEncoder().encode(JSON.stringify(b));
  const keepalive = body.length < 6e4; // browsers refuse keepalive bodies over 64 KB
  let url = endpoint();
  let r;
  busy[id] = 1;
  save(b);
  try {
    if (w.CompressionStream) {
      body = await new Response(new Blob([body]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer();
      url += '&compression=gzip';
    }
    // The collector checks hashCode against the bytes as sent, i.e. after gzip. SubtleCrypto, like
    // randomUUID, exists only in secure contexts.
    if (crypto.subtle) url += '&hashCode=' + hex(new Uint8Array(await crypto.subtle.digest('SHA-256', body), 0, 4));
    // text/plain keeps this a simple request (no CORS preflight); no cookies go to the collector.
    r = await fetch(url, { method: 'POST', body, keepalive, credentials: 'omit', headers: { 'Content-Type': 'text/plain' } });
  } catch (e) {}
  // Retry network errors, 429 and 5xx; any other answer (2xx, 400, 403, 413, …) settles the batch.
  if (r?.status < 500 && r.status != 429) tries = save(b, 1);
  else if (tries < 6) return setTimeout(() => send(b, tries + 1), r?.headers.get('Retry-After') * 1e3 || 2 ** tries * 1e3 * (1 + Math.random()));
  delete busy[id];
};

const resend = () => (st(0, 'hubcap_q') || []).map((b) => busy[b[0].event_id] || send(b, 0));

// On the way out (pagehide, tab hidden) only sendBeacon is sure to leave; it cannot wait for the async
// hash and gzip steps, so it carries plain JSON. What it refuses (over 64 KB) waits in the store.
const flush = (beacon) => {
  clearTimeout(timer);
  timer = 0;
  if (!q.length) return;
  const b = q.splice(0);
  if (!beacon) return send(b, 0);
  const body = JSON.stringify(b);
  (body.length < 6e4 && n.sendBeacon(endpoint(), body)) || save(b);
};

const engage = () => {
  const a = {};
  const t = act + (d.hidden ? 0 : now() - shown);
  if (cfg.engaged && t) a._engagement_time_msec = t;
  if (cfg.scroll && depth) a._scroll_depth = depth;
  act = depth = 0;
  shown = now();
  for (const k in a) return track('_user_engagement', a);
};

const scroll = () => (depth = Math.max(depth, (((scrollY + innerHeight) * 100) / d.documentElement.scrollHeight) | 0));

const key = (u) => (cfg.hash ? u : u.split('#')[0]);

const page = () => {
  if (last) ref = last;
  last = loc.href;
  track('_page_view');
  scroll();
};

const nav = () => key(loc.href) != key(last) && (engage(), page());

const leave = () => {
  engage();
  flush(1);
};

// data-hubcap-event="signup" data-hubcap-plan="pro" → event `signup` with attributes {plan: "pro"}.
const click = (ev) => {
  const t = ev.target;
  const el = t.closest('[data-hubcap-event]');
  const a = t.closest('a[href]');
  const attrs = {};
  if (el) {
    for (const k in el.dataset) if (/^hubcap./.test(k) && k != 'hubcapEvent') attrs[k[6].toLowerCase() + k.slice(7)] = el.dataset[k];
    track(el.dataset.hubcapEvent, attrs);
  }
  if (a?.host != loc.host && /^http/.test(a?.protocol)) track('_click', { _link_url: a.href, _outbound: true });
};

const api = {
  init(o) {
    if (cfg) return;
    cfg = o;
    off =
      st(0, 'hubcap_o') ||
      (o.dnt !== false && (n.doNotTrack == '1' || n.globalPrivacyControl)) ||
      (!o.local && /^(localhost|127\.|\[::1\]|$)/.test(loc.hostname));
    if (off) return;
    ses = st(1, 'hubcap_s') || ses;
    // Routers change the URL with pushState, replaceState, popstate or the hash and set the title
    // afterwards: comparing the URL four times a second catches all of them, with the new title.
    setInterval(nav, 250);
    addEventListener('scroll', scroll, { passive: true });
    addEventListener('pagehide', leave);
    addEventListener('online', resend);
    addEventListener('click', click, true);
    // visibilitychange bubbles from the document to the window.
    addEventListener('visibilitychange', () => (d.hidden ? ((act += now() - shown), leave()) : (shown = now())));
    resend();
    page();
  },
  track,
  page,
  // identify(null) forgets the user (log-out).
  identify(id, traits) {
    const t = now();
    const u = id == null ? undefined : { _user_id: id, ...traits };
    for (const k in u) u[k] = { value: u[k], set_timestamp: t };
    ses.u = u;
    st(1, 'hubcap_s', ses);
  },
  consent(c) {
    cfg.consent = { ...cfg.consent, ...c };
    device();
  },
  // optout(false) lifts the opt-out; collection resumes on the next page load.
  optout(v) {
    st(0, 'hubcap_o', v !== false || null);
    if (v !== false) {
      off = 1;
      q = [];
      st(0, 'hubcap_q', null);
      st(0, 'hubcap_d', null);
    }
  },
};

// The snippet's stub queued the calls made before this script arrived; replay them in order.
const queued = w.hubcap?.q || [];
w.hubcap = (name, ...args) => api[name]?.(...args);
for (const c of queued) w.hubcap(...c);
