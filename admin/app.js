// The Podex fleet console: a static page over the orchestrator's own API, with the same tokens
// (an admin JWT, or the internal API key). No framework: hash routes, fetch, and the DOM.

const main = document.getElementById('main');
const TOKEN_KEY = 'podex.token';
let timer;
// The page a poll belongs to: a poll of a page left behind stops at its next step.
let pageId = 0;
let clock;

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const token = () => sessionStorage.getItem(TOKEN_KEY);

/** One API call. Never throws: no answer is `status: 0` with the reason in `data.message`. */
async function api(method, path, body, extraHeaders = {}) {
  const t = token();
  const headers = { ...extraHeaders, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
  if (t && t.split('.').length === 3) headers.authorization = `Bearer ${t}`;
  else if (t) headers['x-internal-api-key'] = t;
  let res;
  let text;
  // Counted down as it is sent: answers to requests sent together come back later, and in any order.
  if (rateLimit.remaining !== null && rateLimit.resetAt > Date.now()) rateLimit.remaining--;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    text = await res.text();
  } catch (err) {
    return { ok: false, status: 0, data: { message: `the API did not answer (${err.message})` }, headers: new Headers() };
  }
  noteRateLimit(res.headers);
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    // A proxy's error page, say: not the API's own answer.
    data = { message: `HTTP ${res.status} without a JSON body` };
  }
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    location.hash = '#/signin';
  }
  return { ok: res.ok, status: res.status, data, headers: res.headers };
}

// --- polling within the API's rate limit ---------------------------------------------
// The API allows RATE_LIMIT_PER_MINUTE requests per address and as many per user (README), shared
// by every tab and click of the operator. Every answer states the tightest budget it was counted
// against (RateLimit-Policy "limit;w=seconds", -Remaining, -Reset), so a page that polls paces
// itself from those: on its own it spends at most POLL_SHARE of the budget, and when the window
// runs low (another tab, a burst of clicks) it waits for the next one. A refusal waits out
// Retry-After; no answer backs off. Either way the page says it is not updating, and why.
const POLL_SHARE = 0.5;
const rateLimit = { limit: 100, windowMs: 60_000, remaining: null, resetAt: 0 };

function noteRateLimit(headers) {
  const policy = /^\s*(\d+)\s*;\s*w=(\d+)/.exec(headers.get('ratelimit-policy') ?? '');
  if (policy) Object.assign(rateLimit, { limit: Number(policy[1]), windowMs: Number(policy[2]) * 1000 });
  const remaining = headers.get('ratelimit-remaining');
  const reset = headers.get('ratelimit-reset');
  if (remaining === null || reset === null) return;
  const resetAt = Date.now() + Number(reset) * 1000;
  // Answers to one round arrive in any order: within a window the lowest count left is the true one.
  const sameWindow = Math.abs(resetAt - rateLimit.resetAt) < 1000;
  rateLimit.remaining = sameWindow && rateLimit.remaining !== null ? Math.min(rateLimit.remaining, Number(remaining)) : Number(remaining);
  rateLimit.resetAt = sameWindow ? Math.max(resetAt, rateLimit.resetAt) : resetAt;
}

/** How long `perRound` more requests must wait for the next window (ms; 0: now), keeping a fifth of it for clicks. */
function budgetWait(perRound) {
  const reserve = Math.ceil(rateLimit.limit / 5);
  const low = rateLimit.remaining !== null && rateLimit.remaining - perRound < reserve;
  return low && rateLimit.resetAt > Date.now() ? rateLimit.resetAt - Date.now() + 100 : 0;
}

/** How long a page that makes `perRound` requests each round waits before the next (ms), at least `wantedMs`. */
function pollDelay(perRound, wantedMs) {
  const steady = (rateLimit.windowMs * perRound) / (rateLimit.limit * POLL_SHARE);
  return Math.max(wantedMs, steady, budgetWait(perRound));
}

function whyNot(answer) {
  if (answer.status === 429) {
    return `the API's rate limit is used up (HTTP 429: ${rateLimit.limit} requests per ${rateLimit.windowMs / 1000} s per address and per user)`;
  }
  if (answer.status === 0) return answer.data.message;
  return `the API answered HTTP ${answer.status}${answer.data?.message ? `: ${answer.data.message}` : ''}`;
}

/**
 * Polls one page: `round()` makes the page's `perRound` requests and returns `{ answers, draw }`.
 * When every answer is good the page is drawn; otherwise what it shows stays, marked stale in
 * `#freshness` with the reason, and the round is tried again after Retry-After or a back-off.
 * Returns `refresh()`, for an update right after an operator's action.
 */
function poll({ perRound, wantedMs, round }) {
  const mine = pageId;
  const el = main.querySelector('#freshness');
  const state = el.querySelector('.state');
  const when = el.querySelector('.when');
  let lastOk = 0;
  let problem = null;
  let failures = 0;
  let nextAt = 0;
  let running = false;
  let again = false;
  const paint = () => {
    const at = lastOk ? `${new Date(lastOk).toLocaleTimeString()} (${age(new Date(lastOk).toISOString())})` : 'never';
    const next = Math.max(0, Math.ceil((nextAt - Date.now()) / 1000));
    when.textContent = problem ? `Last updated ${at}; trying again in ${next} s.` : `Updated ${at}.`;
  };
  const say = (text) => {
    // Only a change of state is announced (role=status); the clock beside it is not.
    if (state.textContent !== text) state.textContent = text;
    el.dataset.state = problem ? 'stale' : 'live';
    // What the page shows is dimmed while it may be out of date.
    main.classList.toggle('stale', Boolean(problem));
  };
  clearInterval(clock);
  clock = setInterval(paint, 1000);

  async function refresh() {
    if (running) return void (again = true);
    clearTimeout(timer);
    // A page just opened (or a click's refresh) may find the window spent by what came before it.
    const wait = budgetWait(perRound);
    if (wait > 0) return void (timer = setTimeout(refresh, wait));
    running = true;
    const { answers, draw } = await round();
    running = false;
    if (mine !== pageId) return;
    const bad = answers.find((a) => a.status === 429) ?? answers.find((a) => !a.ok);
    let delay;
    if (!bad) {
      lastOk = Date.now();
      problem = null;
      failures = 0;
      draw();
      delay = pollDelay(perRound, wantedMs());
    } else {
      failures++;
      problem = whyNot(bad);
      const retryAfter = Number(bad.headers.get('retry-after'));
      delay = bad.status === 429 && retryAfter > 0 ? retryAfter * 1000 + 100 : Math.min(60_000, pollDelay(perRound, wantedMs()) * 2 ** Math.min(failures, 6));
    }
    say(problem ? `Not updating: ${problem}.` : 'Live.');
    nextAt = Date.now() + delay;
    paint();
    if (again) {
      again = false;
      return refresh();
    }
    timer = setTimeout(refresh, delay);
  }
  return refresh;
}

const freshness = '<p id="freshness" class="freshness" data-state="loading"><span class="state" role="status">Loading…</span> <span class="when"></span></p>';

function toast(message) {
  const el = document.getElementById('toast');
  el.textContent = message;
  el.classList.add('show');
  setTimeout(() => el.classList.remove('show'), 3000);
}

const status = (s) => `<span class="status status-${esc(s)}">${esc(s)}</span>`;
function bar(label, used, reserved, total, unit) {
  const pct = (v) => (total > 0 ? Math.min(100, (v / total) * 100) : 0);
  return `<div class="bar" role="img" aria-label="${esc(label)}: ${used} used, ${reserved} reserved of ${total} ${unit}">
      <span class="reserved" data-width="${pct(reserved)}"></span><span data-width="${pct(used)}"></span></div>
    <div class="bar-label">${esc(label)} ${used} / ${reserved} / ${total} ${unit}</div>`;
}
// The page's Content-Security-Policy refuses style attributes in markup; widths set through the DOM are allowed.
new MutationObserver(() => {
  for (const el of main.querySelectorAll('[data-width]')) {
    el.style.width = `${el.dataset.width}%`;
    el.removeAttribute('data-width');
  }
}).observe(main, { childList: true, subtree: true });
function age(iso) {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
}
function fieldErrors(res) {
  return res.data?.message ?? `HTTP ${res.status}`;
}

// --- pages -------------------------------------------------------------------------

function signin() {
  main.innerHTML = `<h1>Sign in</h1>
    <form id="signin">
      <label>Admin token or internal API key <input name="token" type="password" autocomplete="off" required></label>
      <button>Sign in</button>
      <p class="error" id="err" role="alert"></p>
    </form>`;
  main.querySelector('form').addEventListener('submit', async (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, new FormData(e.target).get('token'));
    const res = await api('GET', '/servers');
    if (res.ok) location.hash = '#/servers';
    else {
      sessionStorage.removeItem(TOKEN_KEY);
      main.querySelector('#err').textContent = fieldErrors(res);
    }
  });
}

async function servers() {
  main.innerHTML = `<h1>Servers</h1>${freshness}<div id="list"></div>`;
  await poll({
    perRound: 1,
    wantedMs: () => 5000,
    round: async () => {
      const res = await api('GET', '/servers');
      return { answers: [res], draw: () => drawServers(res.data.servers) };
    },
  })();
}

function drawServers(list) {
  const rows = list
    .map(
      (s) => `<tr data-server="${esc(s.id)}">
        <td><a href="#/servers/${esc(s.id)}">${esc(s.name)}</a><br><small>${esc(s.hostname)}</small></td>
        <td>${status(s.status)}${s.cordoned ? ' <span class="status">cordoned</span>' : ''}</td>
        <td>${bar('CPU', s.used.cpu.toFixed(1), s.reserved.cpu, s.total.cpu, 'cores')}</td>
        <td>${bar('Memory', s.used.memoryMb, s.reserved.memoryMb, s.total.memoryMb, 'MB')}</td>
        <td>${bar('Disk', s.used.diskGb, s.reserved.diskGb, s.total.diskGb, 'GB')}</td>
        <td>${s.used.activeWorkspaces}</td>
        <td>${esc(age(s.lastHeartbeat))}</td>
      </tr>`,
    )
    .join('');
  main.querySelector('#list').innerHTML = `<p class="bar-label">Bars: used / reserved / total.</p>
    <table><thead><tr><th scope="col">Server</th><th scope="col">Status</th><th scope="col">CPU</th><th scope="col">Memory</th><th scope="col">Disk</th><th scope="col">Workspaces</th><th scope="col">Heartbeat</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="7">No servers yet: <a href="#/servers/new">add one</a>.</td></tr>'}</tbody></table>`;
}

function addServer() {
  main.innerHTML = `<h1>Add a workspace server</h1>
    <form id="add-server" novalidate>
      <label>Name <input name="name" required></label>
      <label>Hostname <input name="hostname" required></label>
      <label>IP address <input name="ipAddress" required></label>
      <label>Docker API port <input name="dockerPort" type="number" value="2376"></label>
      <label>Region <input name="region"></label>
      <label>Labels (key=value, comma separated) <input name="labels"></label>
      <button>Add and onboard</button>
      <p class="error" id="err" role="alert"></p>
    </form>`;
  main.querySelector('form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const labels = Object.fromEntries(
      String(f.get('labels') || '')
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)
        .map((p) => p.split('=').map((x) => x.trim())),
    );
    const body = { name: f.get('name'), hostname: f.get('hostname'), ipAddress: f.get('ipAddress'), dockerPort: Number(f.get('dockerPort')) };
    if (f.get('region')) body.region = f.get('region');
    if (Object.keys(labels).length) body.labels = labels;
    const res = await api('POST', '/servers', body);
    if (!res.ok) return (main.querySelector('#err').textContent = fieldErrors(res));
    toast('Server added: onboarding started');
    location.hash = `#/servers/${res.data.server.id}`;
  });
}

async function server(id) {
  const res = await api('GET', `/servers/${id}`);
  if (!res.ok) {
    // Refused or unanswered, the page is tried again rather than left as an error.
    const retry = res.status === 429 || res.status === 0 || res.status >= 500;
    const wait = res.status === 429 ? Number(res.headers.get('retry-after')) * 1000 + 100 || 5000 : 5000;
    main.innerHTML = `<p class="error" role="alert">${esc(retry ? `Not loaded: ${whyNot(res)}; trying again in ${Math.ceil(wait / 1000)} s.` : fieldErrors(res))}</p>`;
    if (retry) timer = setTimeout(() => server(id), wait);
    return;
  }
  const s = res.data;
  // The forms are drawn once; only the live parts are redrawn, so typing is never lost.
  main.innerHTML = `${freshness}<div id="live" aria-live="polite"></div>
    <h2>Edit</h2>
    <form id="edit" novalidate>
      <label>Total CPU (cores) <input name="totalCpu" type="number" value="${esc(s.total.cpu)}"></label>
      <label>Total memory (MB) <input name="totalMemoryMb" type="number" value="${esc(s.total.memoryMb)}"></label>
      <label>Total disk (GB) <input name="totalDiskGb" type="number" value="${esc(s.total.diskGb)}"></label>
      <label>Labels (key=value, comma separated) <input name="labels" value="${esc(Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(', '))}"></label>
      <label>Status <select name="status"><option value="">unchanged</option><option value="active">active</option><option value="error">error (out of service)</option></select></label>
      <button>Save</button>
      <p class="error" id="edit-err" role="alert"></p>
    </form>
    <h2>Drain</h2>
    <section id="drain" aria-live="polite"></section>
    <form id="start-drain" hidden>
      <label>Deadline <input name="deadline" type="datetime-local" required></label>
      <label>Most migrations at once (fleet-wide) <input name="maxParallel" type="number" min="1" value="4"></label>
      <label>At the deadline <select name="onDeadline"><option value="force">force (move the rest stopped)</option><option value="abort">abort (roll back, uncordon)</option></select></label>
      <button>Start drain</button>
      <p class="error" id="drain-err" role="alert"></p>
    </form>`;
  main.querySelector('input[name=deadline]').value = new Date(Date.now() + 3600_000 - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  // The edit form follows the server (onboarding fills in its capacity) until the operator starts typing.
  const edit = main.querySelector('#edit');
  let dirty = false;
  edit.addEventListener('input', () => (dirty = true));
  const fillEdit = (v) => {
    if (dirty) return;
    edit.totalCpu.value = v.total.cpu;
    edit.totalMemoryMb.value = v.total.memoryMb;
    edit.totalDiskGb.value = v.total.diskGb;
    edit.labels.value = Object.entries(v.labels).map(([k, x]) => `${k}=${x}`).join(', ');
  };
  edit.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const body = { totalCpu: Number(f.get('totalCpu')), totalMemoryMb: Number(f.get('totalMemoryMb')), totalDiskGb: Number(f.get('totalDiskGb')) };
    const labels = String(f.get('labels') || '').split(',').map((p) => p.trim()).filter(Boolean);
    body.labels = Object.fromEntries(labels.map((p) => p.split('=').map((x) => x.trim())));
    if (f.get('status')) body.status = f.get('status');
    const r = await api('PATCH', `/servers/${id}`, body);
    main.querySelector('#edit-err').textContent = r.ok ? '' : fieldErrors(r);
    if (r.ok) {
      dirty = false;
      toast('Saved');
    }
    update();
  });
  main.querySelector('#start-drain').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const r = await api('POST', `/servers/${id}/drain`, { deadline: new Date(String(f.get('deadline'))).toISOString(), maxParallel: Number(f.get('maxParallel')), onDeadline: f.get('onDeadline') });
    main.querySelector('#drain-err').textContent = r.ok ? '' : fieldErrors(r);
    if (r.ok) toast('Drain started');
    update();
  });

  // Each round is three requests: the server, the workspaces (to find its own) and its drain.
  let fast = true;
  const update = poll({
    perRound: 3,
    wantedMs: () => (fast ? 1000 : 5000),
    round: async () => {
      const [now, all, drainRes] = await Promise.all([api('GET', `/servers/${id}`), api('GET', '/workspaces?limit=500'), api('GET', `/servers/${id}/drain`)]);
      // No drain has run here: a 404 is an answer, not a failure.
      const answers = [now, all, drainRes.status === 404 ? { ok: true } : drainRes];
      return { answers, draw: () => draw(now.data, all.data, drainRes.ok ? drainRes.data : null) };
    },
  });

  function draw(v, all, drain) {
    const wss = (all?.workspaces ?? []).filter((w) => w.serverId === id && w.status !== 'deleted');
    const drainRunning = drain?.workflowStatus === 'RUNNING';
    fast = drainRunning || v.status === 'pending';
    const ob = v.onboarding;
    fillEdit(v);
    main.querySelector('#live').innerHTML = `<h1>${esc(v.name)} ${status(v.status)}${v.cordoned ? ' <span class="status">cordoned</span>' : ''}</h1>
      <p>${esc(v.hostname)} · ${esc(v.ipAddress)}:${esc(v.dockerPort)} · heartbeat ${esc(age(v.lastHeartbeat))}${v.lastError ? ` · <span class="error">${esc(v.lastError)}</span>` : ''}
        ${ob ? ` · onboarding ${esc(ob.status)} (<a href="${esc(ob.temporalUi)}" target="_blank" rel="noopener">Temporal UI</a>)` : ''}</p>
      <div class="grid">
        <div class="card"><h2>Capacity</h2>${v.hostCpus && v.hostCpus < v.total.cpu ? `<p class="bar-label">Declared ${esc(v.total.cpu)} cores; the engine has ${esc(v.hostCpus)}, the most one workspace gets.</p>` : ''}${bar('CPU', v.used.cpu.toFixed(1), v.reserved.cpu, v.total.cpu, 'cores')}${bar('Memory', v.used.memoryMb, v.reserved.memoryMb, v.total.memoryMb, 'MB')}${bar('Disk', v.used.diskGb, v.reserved.diskGb, v.total.diskGb, 'GB')}</div>
        <div class="card"><h2>Workspaces (${wss.length})</h2><ul>${wss.map((w) => `<li>${esc(w.name)} ${status(w.status)} <a class="ws-url" href="${esc(w.url)}" data-open="${esc(w.id)}" target="_blank" rel="noopener">${esc(w.url)}</a></li>`).join('') || '<li>none</li>'}</ul></div>
      </div>
      <div class="actions">
        <button id="cordon" type="button">${v.cordoned ? 'Uncordon' : 'Cordon'}</button>
        ${v.status === 'drained' && wss.length === 0 ? '<button id="remove" type="button">Remove server</button>' : ''}
      </div>`;
    main.querySelector('#drain').innerHTML = drain ? drainView(drain) : '<p>No drain has run on this server.</p>';
    main.querySelector('#start-drain').hidden = drainRunning || v.status === 'drained';
    main.querySelector('#cordon').addEventListener('click', async () => {
      const r = await api('POST', `/servers/${id}/${v.cordoned ? 'uncordon' : 'cordon'}`);
      toast(r.ok ? (v.cordoned ? 'Uncordoned' : 'Cordoned') : fieldErrors(r));
      update();
    });
    // A workspace URL opens through the hand-off: the API gives a one-time ticket that the workspace's host trades for its own cookie.
    for (const a of main.querySelectorAll('a[data-open]')) {
      a.addEventListener('click', async (e) => {
        e.preventDefault();
        const r = await api('GET', `/workspaces/${a.dataset.open}/open`, undefined, { accept: 'application/json' });
        if (r.ok) window.open(r.data.url, '_blank', 'noopener');
        else toast(fieldErrors(r));
      });
    }
    main.querySelector('#remove')?.addEventListener('click', async () => {
      const r = await api('DELETE', `/servers/${id}`);
      if (!r.ok) return toast(fieldErrors(r));
      toast('Server removed');
      location.hash = '#/servers';
    });
    for (const action of ['pause', 'resume', 'cancel']) {
      main.querySelector(`#drain-${action}`)?.addEventListener('click', async () => {
        const r = await api('POST', `/servers/${id}/drain/${action}`);
        toast(r.ok ? `Drain: ${action} sent` : fieldErrors(r));
        update();
      });
    }
  }
  await update();
}

function drainView(d) {
  const moved = d.workspaces.filter((w) => w.phase === 'moved').length;
  const running = d.workflowStatus === 'RUNNING';
  return `<p>Drain ${status(d.phase)} · ${moved} of ${d.workspaces.length} moved · at most ${esc(d.maxParallel)} at once (most seen ${esc(d.maxParallelSeen)})
      ${d.paused ? ' · <strong>paused</strong>' : ''}${d.blocked ? ` · <span class="error">${esc(d.blocked)}</span>` : ''}
      · <a href="${esc(d.temporalUi ?? '#')}" target="_blank" rel="noopener">drain in the Temporal UI</a></p>
    ${running ? `<div class="actions"><button id="drain-pause" type="button">Pause</button><button id="drain-resume" type="button">Resume</button><button id="drain-cancel" type="button">Cancel</button></div>` : ''}
    <table><thead><tr><th scope="col">Workspace</th><th scope="col">Phase</th><th scope="col">Copied</th><th scope="col">Target</th><th scope="col">Why</th></tr></thead><tbody>
    ${d.workspaces
      .map(
        (w) => `<tr><td>${esc(w.workspaceId)}</td><td>${status(w.phase)}${w.migrationPhase ? ` <small>${esc(w.migrationPhase)}</small>` : ''}</td>
          <td>${(w.bytesCopied / 1048576).toFixed(1)} MB</td><td>${esc(w.targetServerId ?? '')}</td><td>${esc(w.blocked ?? w.error ?? '')}</td></tr>`,
      )
      .join('')}</tbody></table>`;
}

async function newWorkspace() {
  main.innerHTML = `<h1>New workspace</h1>
    <form id="new-workspace" novalidate>
      <label>Name <input name="name" required></label>
      <label>Tier <select name="tier"><option>free</option><option>pro</option><option>power</option></select></label>
      <label>Server <select name="server" aria-describedby="server-help"><option value="auto">Auto (recommended)</option></select></label>
      <small id="server-help">Auto places it on the best server; or pick one with room.</small>
      <button>Create</button>
      <p class="error" id="err" role="alert"></p>
    </form>`;
  const form = main.querySelector('form');
  const fill = async () => {
    const r = await api('GET', `/servers/available?tier=${encodeURIComponent(form.tier.value)}`);
    const select = form.server;
    select.innerHTML = '<option value="auto">Auto (recommended)</option>' +
      (r.data?.servers ?? []).map((s) => `<option value="${esc(s.id)}">${esc(s.name)} — ${esc(s.free.cpu)} CPU, ${esc(s.free.memoryMb)} MB free</option>`).join('');
  };
  form.tier.addEventListener('change', fill);
  await fill();
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    main.querySelector('#err').textContent = 'Creating…';
    const r = await api('POST', '/workspaces?wait=true', { name: f.get('name'), tier: f.get('tier'), server: f.get('server') });
    if (!r.ok) return (main.querySelector('#err').textContent = fieldErrors(r));
    main.querySelector('#err').textContent = '';
    toast(`Workspace ${r.data.workspace.name} is ${r.data.workspace.status}`);
    location.hash = `#/servers/${r.data.workspace.serverId}`;
  });
}

// --- routing -----------------------------------------------------------------------

function route() {
  clearTimeout(timer);
  clearInterval(clock);
  pageId++;
  main.classList.remove('stale');
  document.getElementById('signout').hidden = !token();
  const hash = location.hash || '#/servers';
  if (!token() && hash !== '#/signin') return (location.hash = '#/signin');
  let m;
  if (hash === '#/signin') signin();
  else if (hash === '#/servers/new') addServer();
  else if ((m = /^#\/servers\/([0-9a-f-]{36})$/.exec(hash))) server(m[1]);
  else if (hash === '#/workspaces/new') newWorkspace();
  else servers();
  main.focus();
}

document.getElementById('signout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = '#/signin';
});
window.addEventListener('hashchange', route);
route();
