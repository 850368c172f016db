// label.js - the browser labeler at /ui/label/{project}: a plain label list
// (a key or a click per label) or a label schema's form (form.js).
//
// The next task shows at once: up to PREFETCH leases are held ahead (one
// batch lease request, a long poll when the queue is empty) and
// heartbeated every third of the lease's TTL. A label, a skip or a give-back
// goes into an outbox kept in this tab's sessionStorage with an idempotency
// key and is sent in the background (labels together, through the batch
// submit); it leaves the outbox only when the broker has answered it. When
// the broker cannot be reached the page says "connection lost — N labels
// waiting" and retries with backoff; a reload of the tab sends what was
// waiting. Undo takes back the last acknowledged label (the broker gives
// its task back on a new lease). Never shown: keys of the task data
// starting with "_" (the agents' rule), gold status, other annotators.
//
// Pre-annotation: a lease of a project with show_predictions carries its
// task's prediction (a project without it sends no "prediction" key, and the
// page then shows no suggestion). A prediction is shown as a "model
// suggestion (score S)" banner and pre-fills the answer: a plain project's
// suggested label is marked and Enter gives it (a number gives another); a
// schema project's form holds the suggested values (spans and boxes drawn,
// editable) and Enter submits them as they stand.

import * as api from './api.js';
import { SchemaForm } from './form.js';

const PREFETCH = 5;
const $ = (id) => document.getElementById(id);
const project = Number((location.pathname.match(/^\/ui\/label\/(\d+)$/) || [])[1]);
const OUTBOX = `quorum.outbox.${project}`;

let me = null;
let proj = null;
let suggested = -1; // a plain project: the index of the label the task's prediction suggests
let form = null; // a SchemaForm for a project with a label schema
let queue = []; // leases held, the first one on screen
let shownAt = 0; // performance.now() when the current task showed
let leasing = false;
let complete = false;
let outbox = JSON.parse(sessionStorage.getItem(OUTBOX) || '[]');
let sending = false;
let backoff = 0;
let lastDone = null; // {annotation_id, lease} of the last acknowledged label
let done = 0;
let dropped = [];
let pendingShow = 0; // performance.now() of the label that waits for the next task
// Submit-to-next-task times (ms), for the browser tests: until the next
// task is in the page (quorumLabelTimes), and until it is painted, its
// images decoded (quorumLabelPaint: the next animation frame after both).
window.quorumLabelTimes = [];
window.quorumLabelPaint = [];

function status(text, cls) {
  const s = $('status');
  s.textContent = text || '';
  s.className = 'status ' + (cls || '');
  s.hidden = !text;
}

function save() {
  sessionStorage.setItem(OUTBOX, JSON.stringify(outbox));
  const n = outbox.filter((o) => o.kind === 'submit').length;
  $('pending').textContent = n ? `${n} label${n === 1 ? '' : 's'} saving…` : 'all labels saved';
  $('pending').dataset.value = String(outbox.length);
  if (backoff) status(outboxStatus(true), 'warn'); // keep "N labels waiting" true
}

function showLogin(message) {
  $('work').hidden = true;
  $('who').hidden = true;
  $('login').hidden = false;
  const e = $('login-error');
  e.textContent = message || '';
  e.hidden = !message;
  $('token').focus();
}

// --- the task on screen ------------------------------------------------------------------------

function render() {
  const t = $('task');
  t.replaceChildren();
  $('progress').textContent = `${done} labeled in this session`;
  const l = queue[0];
  if (!l) {
    t.appendChild(document.createTextNode(complete ? 'The project is complete: no task is left. Thank you!'
      : backoff ? 'Waiting for the broker: no task is held ahead. Your labels are kept.' : 'Waiting for a task…'));
    t.dataset.lease = '';
    $('choices').hidden = true;
    $('form').hidden = true;
    $('submit').hidden = !form;
    return;
  }
  $('choices').hidden = !!form;
  $('form').hidden = !form;
  t.dataset.lease = l.lease;
  t.dataset.task = String(l.task_id);
  const sugg = suggestion(l);
  if (sugg) t.appendChild(sugg.banner);
  const data = l.data || {};
  const own = form ? form.overKeys() : [];
  const shown = Object.keys(data).filter((k) => !k.startsWith('_') && !own.includes(k));
  if (typeof data.text === 'string' && shown.includes('text')) {
    const p = document.createElement('p');
    p.className = 'task-text';
    p.textContent = data.text;
    t.appendChild(p);
  }
  const rest = shown.filter((k) => k !== 'text');
  if (rest.length) {
    const dl = document.createElement('dl');
    for (const k of rest) {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      const v = data[k];
      if (typeof v === 'string' && /^https?:\/\/\S+\.(png|jpe?g|gif|webp)$/i.test(v)) {
        dd.textContent = v + ' (images are not shown: the page loads nothing but from this broker)';
      } else {
        dd.textContent = typeof v === 'string' ? v : JSON.stringify(v, null, 2);
      }
      dl.append(dt, dd);
    }
    t.appendChild(dl);
  }
  const small = document.createElement('div');
  small.className = 'muted';
  small.textContent = `task #${l.task_id}`;
  t.appendChild(small);
  if (form) form.reset(data, sugg ? sugg.labels : null);
  // Nothing the form could hold (no field of the schema, no fitting value): no suggestion.
  if (sugg && form && !Object.keys(form.suggested || {}).length) sugg.banner.remove();
  suggested = sugg && !form ? sugg.index : -1;
  for (const b of $('choices').children) {
    b.classList.toggle('suggested', b.dataset.label === (suggested >= 0 ? proj.labels[suggested] : null));
  }
  $('submit').hidden = !form && suggested < 0;
  shownAt = performance.now();
  if (pendingShow) {
    const t0 = pendingShow;
    window.quorumLabelTimes.push(shownAt - t0);
    pendingShow = 0;
    const imgs = Array.from(document.querySelectorAll('#work img'));
    Promise.all(imgs.map((i) => i.decode().catch(() => {}))).then(() =>
      requestAnimationFrame(() => setTimeout(() => window.quorumLabelPaint.push(performance.now() - t0), 0)));
  }
}

// The suggestion of lease l's prediction: {banner, labels (a schema
// project's values), index (a plain project's label)}, or null when the
// lease has none or none this project's labels can show.
function suggestion(l) {
  const p = l.prediction;
  if (!p || typeof p !== 'object') return null;
  let labels = null, index = -1, what = '';
  if (form) {
    labels = p.labels && typeof p.labels === 'object' ? p.labels : null;
    // A schema of one choice field may have a bare label.
    const only = proj.schema.fields.length === 1 && proj.schema.fields[0].type === 'choice' ? proj.schema.fields[0] : null;
    if (!labels && only && typeof p.label === 'string') labels = { [only.name]: p.label };
    if (!labels || !Object.keys(labels).length) return null;
    what = ': pre-filled below. Enter accepts it as it stands; or change it first (each field says whether it is the suggestion or edited).';
  } else {
    index = (proj.labels || []).indexOf(p.label);
    if (index < 0) return null;
    what = `: ${p.label}. Enter accepts it; or press another label's number.`;
  }
  const banner = document.createElement('div');
  banner.className = 'suggestion';
  banner.dataset.score = typeof p.score === 'number' ? String(p.score) : '';
  const score = typeof p.score === 'number' ? `score ${p.score.toFixed(2)}` : 'no score';
  const model = typeof p.model_version === 'string' && p.model_version ? `, model ${p.model_version}` : '';
  const strong = document.createElement('strong');
  strong.textContent = `model suggestion (${score}${model})`;
  banner.append(strong, what);
  return { banner, labels, index };
}

function next() {
  queue.shift();
  render();
  refill();
}

// --- leases ------------------------------------------------------------------------------------

async function refill() {
  if (leasing || complete || queue.length >= Math.ceil(PREFETCH / 2)) return;
  leasing = true;
  try {
    const r = await api.post(`/v1/projects/${project}/leases`,
      { max: PREFETCH - queue.length, wait_ms: queue.length ? 0 : 5000 });
    const had = queue.length;
    queue.push(...r.leases);
    complete = r.project_complete && !queue.length;
    if (!had) render();
    status(outboxStatus());
  } catch (e) {
    if (fatal(e)) return;
    status(e.status === 409 ? e.message : outboxStatus(true), 'warn');
    await sleep(2000);
  } finally {
    leasing = false;
  }
  if (!queue.length && !complete) setTimeout(refill, 200);
}

async function heartbeat() {
  for (const l of queue.slice()) {
    try {
      const r = await api.post(`/v1/projects/${project}/leases/${l.lease}/heartbeat`, {});
      l.expires_at_ms = r.expires_at_ms;
    } catch (e) {
      if (e.status === 409) {
        // Expired or ended: it is no longer ours; show the next one.
        const i = queue.indexOf(l);
        if (i >= 0) {
          queue.splice(i, 1);
          if (i === 0) render();
        }
      } else if (fatal(e)) return;
      else if (e.status === 0) status(outboxStatus(true), 'warn');
    }
  }
  refill();
}

// --- the outbox --------------------------------------------------------------------------------

function outboxStatus(lost) {
  const n = outbox.filter((o) => o.kind === 'submit').length;
  if (lost || backoff) return `Connection lost — ${n} label${n === 1 ? '' : 's'} waiting. Retrying; nothing you did is lost.`;
  if (dropped.length) return `${dropped.length} label(s) not stored: ${dropped[dropped.length - 1]}`;
  return '';
}

function key() {
  return crypto.randomUUID();
}

async function send() {
  if (sending || !outbox.length) return;
  sending = true;
  try {
    while (outbox.length) {
      const head = outbox[0];
      if (head.kind === 'submit') {
        const batch = [];
        for (const o of outbox) {
          if (o.kind !== 'submit' || batch.length === 100) break;
          batch.push(o);
        }
        const r = await api.post(`/v1/projects/${project}/submit`, {
          results: batch.map((o) => Object.assign({ lease: o.lease, idempotency_key: o.key, active_ms: o.active_ms },
            o.labels ? { labels: o.labels } : { label: o.label })),
        });
        r.results.forEach((res, i) => {
          if (res.status === 200 || res.status === 201) {
            lastDone = { annotation_id: res.annotation_id, lease: batch[i].lease, prediction: batch[i].prediction };
          } else if (res.status < 500) {
            dropped.push(`task #${batch[i].task_id}: ${res.error ? res.error.message : res.status}`);
          } else {
            throw new api.ApiError(res.status, 'retry', 'the broker answered ' + res.status);
          }
        });
        outbox.splice(0, batch.length);
      } else {
        try {
          await api.post(`/v1/projects/${project}/leases/${head.lease}/${head.kind}`, { reason: head.reason });
        } catch (e) {
          if (e.status !== 409) throw e; // a lease already ended needs nothing more
        }
        outbox.shift();
      }
      save();
      backoff = 0;
      status(outboxStatus());
    }
  } catch (e) {
    if (!fatal(e)) {
      backoff = Math.min(10000, backoff ? backoff * 2 : 500);
      status(outboxStatus(true), 'warn');
      setTimeout(() => {
        sending = false;
        send();
      }, backoff);
      return;
    }
  }
  sending = false;
}

// A 401 ends the session; a 403 (not allowed, or paused below the gold
// accuracy) is shown as the API words it. Returns 1 when the work stops.
function fatal(e) {
  if (e.status === 401) {
    api.logout();
    showLogin('Your session ended: the broker no longer accepts this token. Log in again (your waiting labels are kept).');
    return 1;
  }
  if (e.status === 403) {
    status('The broker refuses this to your token: ' + e.message, 'warn');
    return 1;
  }
  return 0;
}

function put(op) {
  outbox.push(op);
  save();
  send();
}

// --- actions -----------------------------------------------------------------------------------

function label(i) {
  const l = queue[0];
  const name = proj.labels[i];
  if (!l || name === undefined) return;
  pendingShow = performance.now();
  put({ kind: 'submit', lease: l.lease, task_id: l.task_id, label: name, key: key(),
    active_ms: Math.round(performance.now() - shownAt), prediction: l.prediction });
  done++;
  next();
}

// Enter, or the submit button: a schema project's form, or a plain
// project's suggested label.
function submitKey() {
  if (form) submitForm();
  else if (suggested >= 0) label(suggested);
}

// A schema project's form, when every required field has a value.
function submitForm() {
  const l = queue[0];
  if (!l || !form) return;
  let labels;
  try {
    labels = form.value();
  } catch (e) {
    status('Not yet: ' + e.message + '.', 'warn');
    return;
  }
  status(outboxStatus());
  pendingShow = performance.now();
  put({ kind: 'submit', lease: l.lease, task_id: l.task_id, labels, key: key(),
    active_ms: Math.round(performance.now() - shownAt), prediction: l.prediction });
  done++;
  next();
}

function skip() {
  const l = queue[0];
  if (!l) return;
  put({ kind: 'skip', lease: l.lease, reason: 'skipped in the browser labeler' });
  next();
}

function giveBack() {
  const l = queue[0];
  if (!l) return;
  put({ kind: 'release', lease: l.lease, reason: 'given back in the browser labeler' });
  next();
}

async function undo() {
  // The last label must be acknowledged first: its annotation id is needed.
  for (let i = 0; i < 100 && outbox.some((o) => o.kind === 'submit'); i++) await sleep(100);
  if (!lastDone) {
    status('Nothing to undo yet.', 'warn');
    return;
  }
  try {
    const r = await api.post(`/v1/projects/${project}/annotations/${lastDone.annotation_id}/undo`, {});
    // The new lease has no prediction of its own: the task's shows again.
    if (r.lease && !('prediction' in r.lease) && lastDone.prediction !== undefined) r.lease.prediction = lastDone.prediction;
    lastDone = null;
    done--;
    queue.unshift(r.lease);
    render();
    status('Your last label was taken back: its task is on screen again.');
  } catch (e) {
    if (!fatal(e)) status('Undo refused: ' + e.message, 'warn');
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// --- start -------------------------------------------------------------------------------------

async function start() {
  $('login').hidden = true;
  $('who').hidden = false;
  $('who-name').textContent = `${me.name} (${me.role})`;
  try {
    proj = await api.get(`/v1/projects/${project}`);
  } catch (e) {
    if (!fatal(e)) status(e.message, 'warn');
    return;
  }
  $('title').textContent = `labeling: ${proj.name}`;
  if (proj.schema) {
    form = new SchemaForm(proj.schema, $('form'));
    $('submit').hidden = false;
    $('keys').textContent = 'Keys: Tab moves between fields, the numbers pick in the active one (select text ' +
      'first for a span; drag on the image for a box; click a span or box to select it: a number relabels it, ' +
      'the arrows move a span\u2019s end, Shift+arrows its start, a drag moves a box, its corner resizes it), ' +
      'Backspace removes the selected or last span or box, Enter submits (a model suggestion as it stands, or ' +
      'as you changed it); S skip, R give back, U undo the last submission. Saved in the background.';
  } else {
    const k = document.createElement('kbd');
    k.textContent = 'Enter';
    $('submit').replaceChildren('Accept the suggestion ', k);
    $('keys').textContent = 'Keys: the number of a label, Enter accepts the model\u2019s suggestion when one is shown, ' +
      'S skip, R give back, U undo the last label. Labels are saved in the background; the next task shows at once.';
  }
  const c = $('choices');
  c.replaceChildren();
  (proj.labels || []).forEach((name, i) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'choice';
    b.dataset.label = name;
    const k = document.createElement('kbd');
    k.textContent = i < 9 ? String(i + 1) : '';
    b.append(k, ' ' + name);
    b.addEventListener('click', () => label(i));
    c.appendChild(b);
  });
  $('work').hidden = false;
  save();
  send();
  render();
  refill();
  setInterval(heartbeat, Math.max(1000, proj.lease_ttl_ms / 3));
  setInterval(send, 3000);
}

document.addEventListener('keydown', (ev) => {
  if ($('work').hidden || ev.target.tagName === 'INPUT') return;
  if (ev.target.tagName === 'TEXTAREA') {
    // Typing a text field: Escape leaves it, Ctrl+Enter submits.
    if (ev.key === 'Escape') ev.target.blur();
    else if (ev.key === 'Enter' && ev.ctrlKey) submitForm();
    else if (ev.key === 'Tab' && form) form.key(ev);
    else return;
    ev.preventDefault();
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (form && form.key(ev)) ev.preventDefault();
  else if (ev.key === 'Enter' && (form || suggested >= 0)) submitKey();
  else if (!form && /^[1-9]$/.test(ev.key)) label(Number(ev.key) - 1);
  else if (ev.key === 's' || ev.key === 'S') skip();
  else if (ev.key === 'r' || ev.key === 'R') giveBack();
  else if (ev.key === 'u' || ev.key === 'U') undo();
  else return;
  ev.preventDefault();
});

// Closing the tab while labels wait would drop them with the tab's
// sessionStorage: the browser asks first (its own "Leave site?" prompt).
window.addEventListener('beforeunload', (ev) => {
  if (outbox.length === 0) return;
  ev.preventDefault();
  ev.returnValue = '';
});

// Leaving the page gives back the leases held ahead (not the labels waiting:
// they stay in the outbox and go on the next visit).
window.addEventListener('pagehide', () => {
  const waiting = new Set(outbox.map((o) => o.lease));
  for (const l of queue) {
    if (!waiting.has(l.lease))
      api.post(`/v1/projects/${project}/leases/${l.lease}/release`, { reason: 'page closed' }, { keepalive: true }).catch(() => {});
  }
});

document.addEventListener('DOMContentLoaded', async () => {
  $('skip').addEventListener('click', skip);
  $('submit').addEventListener('click', submitKey);
  $('release').addEventListener('click', giveBack);
  $('undo').addEventListener('click', undo);
  $('logout').addEventListener('click', () => {
    api.logout();
    showLogin('You are logged out.');
  });
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    api.setToken($('token').value.trim());
    $('token').value = '';
    try {
      me = await api.get('/v1/whoami');
      start();
    } catch (e) {
      api.logout();
      showLogin(e.status === 401 ? 'This token was refused: it is unknown, revoked or expired.' : e.message);
    }
  });
  if (!project) {
    status('No project in the address: open /ui/label/ID.', 'warn');
    return;
  }
  if (!api.token()) {
    showLogin('');
    return;
  }
  try {
    me = await api.get('/v1/whoami');
    start();
  } catch (e) {
    api.logout();
    showLogin(e.status === 401 ? 'Your session ended. Log in again.' : e.message);
  }
});
