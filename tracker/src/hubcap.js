// hubcap web tracker. Size and privacy goals: ../ARCHITECTURE.md. The budget is 2 KB min+gzip, so the
// code prefers short forms (esbuild shortens every local name, so names here are for people; property
// names and strings are what cost bytes); comments say why a choice was made.
// The aliases of browser globals exist because the minifier can shorten an alias but not a global.
const win = window;
const doc = document;
const nav = navigator;
const loc = location;
const now = Date.now;
// Storage keys (written inline, which gzips smaller):
//   localStorage   hubcap_q  batches the collector has not answered yet (write-ahead, bounded)
//                  hubcap_d  device id, only with consent
//                  hubcap_o  the visitor opted out
//   sessionStorage hubcap_s  the session: {i: session id, t: last activity, n: bundle sequence,
//                            u: identified user, x: instance id}

let config;
let disabled = 1; // nothing is collected until init has checked opt-out, DNT, GPC and localhost
let queue = [];
let flushTimer;
let lastUrl;
let referrer = doc.referrer;
let sessionState = {};
let sending = {}; // first event_id of each batch this page is sending, so a resend never doubles one
let visibleSince = now();
let visibleMs = 0; // time visible before the page was last hidden, not yet reported
let scrollDepth = 0;

// Storage can throw (disabled cookies, private modes, quota): the tracker then works without it.
// Writing null clears a key: reading it back gives null.
const store = (inSession, key, value) => {
  try {
    const storage = inSession ? sessionStorage : localStorage;
    return value === undefined ? JSON.parse(storage[key]) : (storage[key] = JSON.stringify(value));
  } catch (e) {}
};

const toHex = (bytes) => [...bytes].map((byte) => (byte + 256).toString(16).slice(1)).join('');

// crypto.randomUUID exists only in secure contexts; on plain http 128 random bits in hex serve as well.
const newId = () => crypto.randomUUID?.() || toHex(crypto.getRandomValues(new Uint8Array(16)));

// A session ends after 30 minutes without an event.
const sessionId = () => {
  const time = now();
  if (!(time - sessionState.t < 18e5)) sessionState.i = newId();
  sessionState.t = time;
  store(1, 'hubcap_s', sessionState);
  return sessionState.i;
};

const deviceId = () => {
  if (!config.consent?.device) return void store(0, 'hubcap_d', null);
  const id = store(0, 'hubcap_d') || newId();
  store(0, 'hubcap_d', id);
  return id;
};

const track = (type, attrs) => {
  if (disabled) return;
  const event = {
    event_type: type,
    event_id: newId(),
    timestamp: now(),
    app_id: config.appId,
    platform: 'Web',
    page_url: loc.href,
    page_title: doc.title,
    page_referrer: referrer,
    screen_width: screen.width,
    screen_height: screen.height,
    viewport_width: innerWidth,
    viewport_height: innerHeight,
    locale: nav.language,
    system_language: nav.language.split('-')[0],
    zone_offset: new Date().getTimezoneOffset() * -6e4,
    sdk_name: 'hubcap-web',
    sdk_version: __VERSION__,
    session_id: sessionId(),
    device_id: deviceId(),
    user: sessionState.u,
    instance_id: sessionState.x,
    attributes: { ...attrs },
  };
  // The enrichment's bot check reads this hint; automated browsers set navigator.webdriver.
  if (nav.webdriver) event.attributes._webdriver = true;
  queue.push(event);
  // Ten events go at once; fewer wait up to two seconds for company.
  queue.length > 9 ? flush() : (flushTimer = flushTimer || setTimeout(flush, 2e3));
};

const collectUrl = () => {
  sessionState.n = ~~sessionState.n + 1;
  store(1, 'hubcap_s', sessionState);
  return config.endpoint + '?appId=' + config.appId + '&platform=Web&event_bundle_sequence_id=' + sessionState.n;
};

// Write-ahead: a batch stays in localStorage until the collector has answered for it, so a reload, a
// crash or an outage resends it with the same event_ids (the pipeline dedups on them). When the store
// would pass 256 KB the oldest batches go.
const saveBatch = (batch, answered) => {
  const saved = (store(0, 'hubcap_q') || []).filter((other) => other[0].event_id != batch[0].event_id);
  answered || saved.push(batch);
  while (JSON.stringify(saved).length > 262144) saved.shift();
  store(0, 'hubcap_q', saved);
};

const send = async (batch, attempt) => {
  if (disabled) return; // opted out meanwhile: pending retries stop too
  const id = batch[0].event_id;
  let body = new TextEncoder().encode(JSON.stringify(batch));
  const keepalive = body.length < 6e4; // browsers refuse keepalive bodies over 64 KB
  let url = collectUrl();
  let response;
  sending[id] = 1;
  saveBatch(batch);
  try {
    if (win.CompressionStream) {
      body = await new Response(new Blob([body]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer();
      url += '&compression=gzip';
    }
    // The collector checks hashCode against the bytes as sent, i.e. after gzip. SubtleCrypto, like
    // randomUUID, exists only in secure contexts.
    if (crypto.subtle) url += '&hashCode=' + toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', body), 0, 4));
    // text/plain keeps this a simple request (no CORS preflight); no cookies go to the collector.
    response = await fetch(url, { method: 'POST', body, keepalive, credentials: 'omit', headers: { 'Content-Type': 'text/plain' } });
  } catch (e) {}
  // Retry network errors, 429 and 5xx; any other answer (2xx, 400, 403, 413, …) settles the batch.
  if (response?.status < 500 && response.status != 429) saveBatch(batch, 1);
  else if (attempt < 6)
    return setTimeout(
      () => send(batch, attempt + 1),
      response?.headers.get('Retry-After') * 1e3 || 2 ** attempt * 1e3 * (1 + Math.random()),
    );
  delete sending[id];
};

const resendSaved = () => (store(0, 'hubcap_q') || []).map((batch) => sending[batch[0].event_id] || send(batch, 0));

// On the way out (pagehide, tab hidden) only sendBeacon is sure to leave; it cannot wait for the async
// hash and gzip steps, so it carries plain JSON. What it refuses (over 64 KB) waits in the store.
const flush = (leaving) => {
  clearTimeout(flushTimer);
  flushTimer = 0;
  if (!queue.length) return;
  const batch = queue.splice(0);
  if (!leaving) return send(batch, 0);
  const body = JSON.stringify(batch);
  (body.length < 6e4 && nav.sendBeacon(collectUrl(), body)) || saveBatch(batch);
};

// One _user_engagement event per page (or on leaving it): the visible time and the deepest scroll.
const reportEngagement = () => {
  const attrs = {};
  const engagedMs = visibleMs + (doc.hidden ? 0 : now() - visibleSince);
  if (config.engaged && engagedMs) attrs._engagement_time_msec = engagedMs;
  if (config.scroll && scrollDepth) attrs._scroll_depth = scrollDepth;
  visibleMs = scrollDepth = 0;
  visibleSince = now();
  for (const name in attrs) return track('_user_engagement', attrs);
};

const measureScroll = () =>
  (scrollDepth = Math.max(scrollDepth, (((scrollY + innerHeight) * 100) / doc.documentElement.scrollHeight) | 0));

// Without the `hash` option, a change of the #fragment alone is not a new page.
const pageKey = (url) => (config.hash ? url : url.split('#')[0]);

const page = () => {
  if (lastUrl) referrer = lastUrl;
  lastUrl = loc.href;
  track('_page_view');
  measureScroll();
};

const onRouteChange = () => pageKey(loc.href) != pageKey(lastUrl) && (reportEngagement(), page());

const onLeave = () => {
  reportEngagement();
  flush(1);
};

// data-hubcap-event="signup" data-hubcap-plan="pro" → event `signup` with attributes {plan: "pro"}.
const onClick = (click) => {
  const tagged = click.target.closest('[data-hubcap-event]');
  const link = click.target.closest('a[href]');
  const attrs = {};
  if (tagged) {
    for (const name in tagged.dataset)
      if (/^hubcap./.test(name) && name != 'hubcapEvent') attrs[name[6].toLowerCase() + name.slice(7)] = tagged.dataset[name];
    track(tagged.dataset.hubcapEvent, attrs);
  }
  if (link?.host != loc.host && /^http/.test(link?.protocol)) track('_click', { _link_url: link.href, _outbound: true });
};

const api = {
  init(options) {
    if (config) return;
    config = options;
    disabled =
      store(0, 'hubcap_o') ||
      (options.dnt !== false && (nav.doNotTrack == '1' || nav.globalPrivacyControl)) ||
      (!options.local && /^(localhost|127\.|\[::1\]|$)/.test(loc.hostname));
    if (disabled) return;
    sessionState = store(1, 'hubcap_s') || sessionState;
    // Routers change the URL with pushState, replaceState, popstate or the hash and set the title
    // afterwards: comparing the URL four times a second catches all of them, with the new title.
    setInterval(onRouteChange, 250);
    addEventListener('scroll', measureScroll, { passive: true });
    addEventListener('pagehide', onLeave);
    addEventListener('online', resendSaved);
    addEventListener('click', onClick, true);
    // visibilitychange bubbles from the document to the window.
    addEventListener('visibilitychange', () =>
      doc.hidden ? ((visibleMs += now() - visibleSince), onLeave()) : (visibleSince = now()),
    );
    resendSaved();
    page();
  },
  track,
  page,
  // identify(null) forgets the user (log-out).
  identify(id, traits) {
    const time = now();
    const user = id == null ? undefined : { _user_id: id, ...traits };
    for (const name in user) user[name] = { value: user[name], set_timestamp: time };
    sessionState.u = user;
    store(1, 'hubcap_s', sessionState);
  },
  // instance('chat-42') joins the tab's later events with a back end's events of that instance (the
  // event profile's instance_id); instance(null) ends it. Held in the session, so it outlives a reload.
  instance(id) {
    sessionState.x = id ? '' + id : undefined;
    store(1, 'hubcap_s', sessionState);
  },
  consent(choices) {
    config.consent = { ...config.consent, ...choices };
    deviceId();
  },
  // optout(false) lifts the opt-out; collection resumes on the next page load.
  optout(optedOut) {
    store(0, 'hubcap_o', optedOut !== false || null);
    if (optedOut !== false) {
      disabled = 1;
      queue = [];
      store(0, 'hubcap_q', null);
      store(0, 'hubcap_d', null);
    }
  },
};

// The snippet's stub queued the calls made before this script arrived; replay them in order.
const queued = win.hubcap?.q || [];
win.hubcap = (name, ...args) => api[name]?.(...args);
for (const call of queued) win.hubcap(...call);
