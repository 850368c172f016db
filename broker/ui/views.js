// views.js - the dashboard's views: the projects list, a project
// (burn-down, completions per minute, per-annotator and per-vendor tables),
// its quality (agreement per field and over time, the annotator x annotator
// heatmap, per-label confusion against the consensus, the lowest-agreement
// tasks) and one task with its annotations. Each view is an async function that fetches
// what it shows from the API and returns a DOM tree; app.js calls it again
// on every poll. Numbers shown carry their raw value in data-value, so a
// test can compare them with the API's.

import * as api from './api.js';
import { barChart, confusionMatrix, fmtNumber, heatmap, lineChart, progressBar } from './charts.js';

export function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) {
    if (k === 'class') e.className = attrs[k];
    else if (k === 'onclick') e.addEventListener('click', attrs[k]);
    else if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined) continue;
    e.appendChild(typeof k === 'string' || typeof k === 'number' ? document.createTextNode(String(k)) : k);
  }
  return e;
}

// A number cell: shown formatted, raw in data-value, named by data-k.
function num(k, v, digits, suffix) {
  return h('td', { class: 'num', 'data-k': k, 'data-value': v === null || v === undefined ? '' : String(v) },
    v === null || v === undefined ? '—' : fmtNumber(v, digits) + (suffix || ''));
}

// A duration in ms, shown as ms under a second and as seconds above.
function dur(k, ms) {
  const v = ms === null || ms === undefined ? null : ms;
  return h('td', { class: 'num', 'data-k': k, 'data-value': v === null ? '' : String(v) },
    v === null ? '—' : v < 1000 ? fmtNumber(v, 0) + ' ms' : fmtNumber(v / 1000, 1) + ' s');
}

function pct(k, v) {
  return num(k, v === null || v === undefined ? null : v * 100, 1, ' %');
}

export function fmtDuration(s) {
  if (s === null || s === undefined) return '—';
  if (s <= 0) return 'done';
  if (s < 60) return Math.round(s) + ' s';
  if (s < 3600) return Math.round(s / 60) + ' min';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
  return (s / 86400).toFixed(1) + ' days';
}

function state(p, prog) {
  if (p.archived) return 'archived';
  if (prog && prog.tasks > 0 && prog.tasks_complete >= prog.tasks) return 'complete';
  if (p.paused) return 'paused';
  return 'running';
}

// The ETA the command line prints: the pace of the last 10 minutes of work
// (eta.pace), else the last hour's rate. null: no recent work.
function eta(tp) {
  if (!tp || !tp.eta) return null;
  if (tp.eta.pace && tp.eta.pace.seconds !== null) return { s: tp.eta.pace.seconds, perHour: tp.eta.pace.per_hour };
  return { s: tp.eta.seconds, perHour: tp.eta.rate_per_hour };
}

async function maybe(p) {
  try {
    return await p;
  } catch (e) {
    if (e.status === 403) return null; // the role may not read it: the view shows "—"
    throw e;
  }
}

// --- the projects list -----------------------------------------------------------------------

export async function projectsView() {
  const list = await api.projects();
  const rows = await Promise.all(list.map(async (p) => {
    const [prog, tp] = await Promise.all([
      api.get(`/v1/projects/${p.id}/progress`),
      maybe(api.get(`/v1/projects/${p.id}/throughput?window=1h`)),
    ]);
    return { p, prog, tp };
  }));
  const table = h('table', { class: 'data', id: 'projects' },
    h('thead', {}, h('tr', {},
      h('th', {}, 'Project'), h('th', {}, 'State'), h('th', { class: 'wide' }, 'Progress (tasks complete)'),
      h('th', { class: 'num' }, 'Annotations still needed'), h('th', { class: 'num' }, 'Pace (annotations / h)'),
      h('th', { class: 'num' }, 'ETA'))),
    h('tbody', {}, rows.map(({ p, prog, tp }) => {
      const e = eta(tp);
      const st = state(p, prog);
      return h('tr', { 'data-project': p.id },
        h('td', {}, h('a', { href: `#/project/${p.id}` }, p.name), h('span', { class: 'muted' }, ` #${p.id}`)),
        h('td', {}, h('span', { class: 'state ' + st, 'data-k': 'state' }, st)),
        h('td', { 'data-k': 'progress', 'data-value': `${prog.tasks_complete}/${prog.tasks}` },
          progressBar(prog.tasks_complete, prog.tasks)),
        num('annotations_remaining', prog.annotations_remaining),
        num('pace', e ? e.perHour : null, 0),
        h('td', { class: 'num', 'data-k': 'eta', title: 'at the pace of the last 10 minutes of work' },
          e ? fmtDuration(e.s) : '—'));
    })));
  return h('section', {},
    h('h2', {}, 'Projects'),
    list.length ? table : h('p', { class: 'muted' }, 'No project yet.'),
    h('p', { class: 'note' }, 'ETA: the annotations still needed at the pace of the last 10 minutes of work. ' +
      '— means no figure: no recent work, or your role may not read the throughput report.'));
}

// --- a project -------------------------------------------------------------------------------

// Per project, the annotations of each closed minute (minute start ms -> count),
// asked once each: a closed minute does not change.
const minutes = new Map();
const HISTORY_MIN = 20;

function iso(ms) {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

async function perMinute(id, nowMs) {
  let m = minutes.get(id);
  if (!m) minutes.set(id, (m = new Map()));
  const cur = Math.floor(nowMs / 60000) * 60000;
  const want = [];
  for (let t = cur - HISTORY_MIN * 60000; t < cur; t += 60000) if (!m.has(t)) want.push(t);
  await Promise.all(want.map(async (t) => {
    const r = await api.get(`/v1/projects/${id}/throughput?window=${iso(t)}..${iso(t + 60000)}`);
    m.set(t, r.totals.annotations);
  }));
  for (const t of [...m.keys()]) if (t < cur - HISTORY_MIN * 60000) m.delete(t);
  const curR = await api.get(`/v1/projects/${id}/throughput?window=${iso(cur)}..${iso(cur + 60000)}`);
  const pts = [...m.entries()].sort((a, b) => a[0] - b[0]);
  pts.push([cur, curR.totals.annotations]);
  return pts; // [minute start, annotations in it]; the last minute is still running
}

// [time, the crew's annotations so far] at each minute's end, counted back
// from the total with each minute's annotations.
function crewCumulative(pm, total) {
  const out = [];
  let after = 0;
  for (let i = pm.length - 1; i >= 0; i--) {
    out.push([i === pm.length - 1 ? Date.now() : pm[i][0] + 60000, total - after]);
    after += pm[i][1];
  }
  if (pm.length) out.push([pm[0][0], total - after]);
  return out.reverse();
}

function tile(label, value, k, raw, sub) {
  return h('div', { class: 'tile' }, h('div', { class: 'tile-label' }, label),
    h('div', { class: 'tile-value', 'data-k': k, 'data-value': raw === undefined ? '' : String(raw) }, value),
    sub ? h('div', { class: 'tile-sub' }, sub) : null);
}

export function tabs(id, which) {
  return h('nav', { class: 'tabs' },
    h('a', { href: '#/', class: '' }, '← All projects'),
    h('a', { href: `#/project/${id}`, class: which === 'project' ? 'on' : '' }, 'Throughput'),
    h('a', { href: `#/project/${id}/quality`, class: which === 'quality' ? 'on' : '' }, 'Quality'),
    which === 'task' ? h('a', { href: location.hash, class: 'on' }, 'Task') : null);
}

export async function projectView(id, me) {
  const p = await api.get(`/v1/projects/${id}`);
  const owner = me.organization_id === p.org_id && me.role !== 'annotator';
  const [prog, report, tp, vendors] = await Promise.all([
    api.get(`/v1/projects/${id}/progress`),
    api.get(`/v1/projects/${id}/report`),
    api.get(`/v1/projects/${id}/throughput?window=1h`),
    owner ? api.get(`/v1/projects/${id}/throughput?window=1h&by=vendor`) : null,
  ]);
  const now = tp.now_ms || Date.now();
  const pm = await perMinute(id, now);
  const e = eta(tp);
  const st = state(p, prog);

  // Burn-down: what was still needed at each minute's end, counted back
  // from now, and the line to zero at the current pace.
  let after = 0;
  const burn = [];
  burn.push([now, report.annotations_remaining]);
  for (let i = pm.length - 1; i >= 0; i--) {
    after += pm[i][1];
    burn.push([pm[i][0], report.annotations_remaining + after]);
  }
  burn.reverse();
  const proj = e && e.s > 0 && e.s < 86400 * 2 ? [[now, report.annotations_remaining], [now + e.s * 1000, 0]] : [];

  const perAnn = new Map();
  for (const r of tp.rows || []) perAnn.set(r.annotator_id, r);
  const scopeNote = owner ? '' : ' (your organization\u2019s crew only)';

  const annRows = report.per_annotator.map((a) => {
    const t = perAnn.get(a.annotator_id) || {};
    const who = a.organization_id === report.project_org_id ? a.annotator : `${a.annotator}@${a.organization}`;
    return h('tr', { 'data-annotator': a.annotator_id },
      h('td', { 'data-k': 'annotator', class: 'name' }, who),
      h('td', {}, a.organization),
      num('annotations', a.annotations),
      num('last_hour', t.annotations === undefined ? 0 : t.annotations),
      num('rate', t.active_ms ? t.annotations / (t.active_ms / 3600000) : null, 0),
      dur('time_on_task', t.time_on_task ? t.time_on_task.median_ms : null),
      num('idle', t.idle_ms === undefined ? null : t.idle_ms / 60000, 1, ' min'),
      pct('utilisation', t.utilisation),
      num('skips', t.leases ? t.leases.skipped : null),
      h('td', { class: 'num', 'data-k': 'gold', title: a.gold_accuracy ? `95 % interval ${fmtNumber(a.gold_accuracy.low * 100, 0)}–${fmtNumber(a.gold_accuracy.high * 100, 0)} %` : '' },
        a.gold_accuracy && a.gold_accuracy.value !== null ? `${fmtNumber(a.gold_accuracy.value * 100, 1)} % of ${fmtNumber(a.gold_accuracy.compared)}` : '—'),
      h('td', { class: 'num', 'data-k': 'review' },
        a.review_acceptance && a.review_acceptance.value !== null ? `${fmtNumber(a.review_acceptance.value * 100, 1)} % of ${fmtNumber(a.review_acceptance.compared)}` : '—'));
  });

  const out = h('section', {},
    h('h2', {}, p.name, h('span', { class: 'muted' }, ` #${p.id}`), ' ', h('span', { class: 'state ' + st, 'data-k': 'state' }, st)),
    tabs(id, 'project'),
    h('div', { class: 'tiles' },
      tile('Tasks complete', `${fmtNumber(report.tasks_complete)} of ${fmtNumber(report.tasks)}`, 'tasks_complete', report.tasks_complete,
        `${fmtNumber(report.tasks ? (100 * report.tasks_complete) / report.tasks : 0, 1)} %`),
      tile('Annotations still needed', fmtNumber(report.annotations_remaining), 'annotations_remaining', report.annotations_remaining),
      tile('Annotations done' + scopeNote, fmtNumber(report.annotations), 'annotations', report.annotations),
      tile('Pace', e && e.perHour !== null ? fmtNumber(e.perHour) + ' / h' : '—', 'pace', e ? e.perHour : '', 'annotations per hour of work, last 10 min'),
      tile('ETA', e ? fmtDuration(e.s) : '—', 'eta', e ? e.s : '',
        (e && e.s > 0 ? 'done at about ' + new Date(now + e.s * 1000).toTimeString().slice(0, 5) : 'at the current pace') +
        (owner ? '' : ', if only your crew worked')),
      tile('Annotators', fmtNumber(report.annotators), 'annotators', report.annotators)),
    h('div', { class: 'charts' },
      owner ? lineChart([
        { name: 'still needed', points: burn, cls: 's1' },
        { name: 'projection at current pace', points: proj, dashed: true, cls: 's2' }],
      { title: 'Queue burn-down (annotations still needed)', xLabel: 'time (hh:mm, your clock)', yLabel: 'annotations' })
        // A vendor sees only its crew's work, so it cannot count the queue
        // back in time: it gets its crew's cumulative work instead.
        : lineChart([{ name: 'your crew, cumulative', points: crewCumulative(pm, report.annotations), cls: 's1' }],
          { title: 'Your crew\u2019s annotations over the last 20 min', xLabel: 'time (hh:mm, your clock)', yLabel: 'annotations (all time)' }),
      barChart(pm.map(([t, n], i) => ({ label: new Date(t).toTimeString().slice(0, 5) + (i === pm.length - 1 ? '*' : ''), value: n })),
        { title: `Completions per minute, last ${HISTORY_MIN} min (* = this minute, still running)`, xLabel: 'minute starting at (hh:mm)', yLabel: 'annotations / min', labelEvery: 4 })),
    h('h3', {}, 'Annotators' + scopeNote),
    h('div', { class: 'scroll' }, h('table', { class: 'data', id: 'annotators' },
      h('thead', {}, h('tr', {},
        h('th', {}, 'Annotator'), h('th', {}, 'Organization'), h('th', { class: 'num' }, 'Annotations'),
        h('th', { class: 'num' }, 'Last hour'), h('th', { class: 'num', title: 'annotations in the last hour per hour of active time' }, 'Rate (per hour of work)'),
        h('th', { class: 'num' }, 'Time on task'), h('th', { class: 'num' }, 'Idle'),
        h('th', { class: 'num' }, 'Utilisation'), h('th', { class: 'num' }, 'Skips'),
        h('th', { class: 'num' }, 'Gold accuracy'), h('th', { class: 'num' }, 'Review accepted'))),
      h('tbody', {}, annRows.length ? annRows : h('tr', {}, h('td', { colspan: 11, class: 'muted' }, 'Nobody has annotated yet.'))))),
    h('div', { class: 'charts' },
      barChart(report.per_annotator.map((a) => ({ label: a.annotator, value: a.annotations })),
        { title: 'Annotations per annotator (all time)', xLabel: 'annotator', yLabel: 'annotations' })),
    vendors ? h('div', {},
      h('h3', {}, 'Per organization (last hour)'),
      h('table', { class: 'data', id: 'vendors' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Organization'), h('th', { class: 'num' }, 'Annotators'),
          h('th', { class: 'num' }, 'Annotations'), h('th', { class: 'num', title: 'annotations in the last hour per hour of active time, summed over the crew' }, 'Rate (per annotator-hour of work)'),
          h('th', { class: 'num' }, 'Time on task (median)'), h('th', { class: 'num' }, 'Skips'),
          h('th', { class: 'num' }, 'Utilisation'))),
        h('tbody', {}, (vendors.rows || []).map((v) => h('tr', {},
          h('td', {}, v.organization || String(v.organization_id)),
          num('annotators', v.annotators),
          num('annotations', v.annotations),
          num('rate', v.active_ms ? v.annotations / (v.active_ms / 3600000) : null, 0),
          dur('time_on_task', v.time_on_task ? v.time_on_task.median_ms : null),
          num('skips', v.leases ? v.leases.skipped : null),
          pct('utilisation', v.utilisation)))))) : null,
    h('p', { class: 'note' }, 'Annotations, gold accuracy and review acceptance: all time (the project report). ' +
      'Every other column is over the last hour (the throughput report): rate = annotations per hour of active work; ' +
      'time on task = the median the annotator\u2019s client measured; idle = gaps over 5 minutes between a person\u2019s events; ' +
      'utilisation = active / (active + idle).'));
  return out;
}

// --- quality ---------------------------------------------------------------------------------

function metricValue(m) {
  if (m === null || m === undefined) return null;
  if (typeof m === 'number') return m;
  if (typeof m === 'object' && 'value' in m) return m.value;
  return null;
}

function defined(metrics) {
  return Object.entries(metrics || {}).map(([k, v]) => [k, metricValue(v)]).filter(([, v]) => v !== null && typeof v === 'number');
}

function undefinedCount(metrics) {
  return Object.values(metrics || {}).filter((v) => metricValue(v) === null).length;
}

// "krippendorff_alpha_nominal" -> "Krippendorff alpha (nominal)"
function metricName(k) {
  const w = k.split('_');
  const kinds = ['nominal', 'ordinal', 'interval', 'ratio', 'linear', 'quadratic', 'masi', 'jaccard', 'exact', 'overlap'];
  const last = kinds.includes(w[w.length - 1]) ? ` (${w.pop()})` : '';
  const s = w.join(' ') + last;
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function alphaReading(a) {
  if (a === null || a === undefined) return 'undefined on this data';
  if (a >= 0.8) return 'reliable (≥ 0.80)';
  if (a >= 0.667) return 'tentative (0.667–0.80)';
  return 'too low to rely on (< 0.667)';
}

// The x axis of the over-time chart for its bucket: a clock for minutes,
// day and hour for hours (your clock), the UTC date for days.
function bucketFormat(bucket) {
  if (bucket === 'day') return (ms) => new Date(ms).toISOString().slice(0, 10);
  if (bucket === 'hour') return (ms) => {
    const d = new Date(ms);
    return `${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')} ${d.toTimeString().slice(0, 5)}`;
  };
  return (ms) => new Date(ms).toTimeString().slice(0, 5);
}

function overTimeChart(name, points, bucket) {
  const pa = points.map((q) => [q.start_ms, q.percent_agreement, `${q.tasks} task(s)`]);
  const alpha = points.filter((q) => q.krippendorff_alpha_nominal !== null)
    .map((q) => [q.start_ms, q.krippendorff_alpha_nominal, `${q.tasks} task(s)`]);
  const chart = lineChart([
    { name: 'percent agreement', points: pa, cls: 's1', dots: true },
    { name: 'Krippendorff alpha', points: alpha, cls: 's2', dots: true, dashed: true }],
  { title: `${name}: agreement of the tasks completed each ${bucket}`, xLabel: `${bucket} the tasks completed in`,
    yLabel: 'agreement (1 = perfect)', yMax: 1, xFormat: bucketFormat(bucket), empty: 'no task with two annotations complete yet' });
  chart.setAttribute('data-field', name);
  chart.setAttribute('data-points', String(points.length));
  chart.classList.add('over-time');
  return chart;
}

function confusionBlock(name, c) {
  if (!c.labels.length || !c.annotations)
    return h('p', { class: 'muted', 'data-field': name }, `${name}: no complete task with a consensus yet.`);
  const chart = confusionMatrix(c.labels, c.matrix, { title: `${name}: label given × the task's consensus`,
    rowLabel: 'label an annotator gave', colLabel: 'consensus of the task (majority label)' });
  chart.setAttribute('data-field', name);
  return h('div', {}, chart,
    h('p', { class: 'note' }, `${fmtNumber(c.annotations)} annotations of ${fmtNumber(c.tasks)} complete tasks with a consensus; ` +
      `${fmtNumber(c.tasks_without_consensus)} tasks tied (no majority label) are left out.`));
}

// The agreement report's confusion and over_time cost a pass over the
// project's complete tasks in PostgreSQL (some 2 s each at 100,000 tasks):
// asked at most once a minute per project, the polls between reuse them.
const EXTRAS_MS = 60000;
const extras = new Map();

export async function qualityView(id) {
  const p = await api.get(`/v1/projects/${id}`);
  const old = extras.get(id);
  const fresh = old && Date.now() - old.at < EXTRAS_MS;
  const ag = await api.get(`/v1/projects/${id}/agreement?per_item=1` + (fresh ? '' : '&confusion=1&over_time=1'));
  if (fresh) Object.assign(ag, { confusion: old.confusion, over_time: old.over_time });
  else extras.set(id, { at: Date.now(), confusion: ag.confusion, over_time: ag.over_time });
  const m = ag.metrics || {};
  const alpha = metricValue(m.krippendorff_alpha_nominal);
  const pa = metricValue(m.percent_agreement);

  const fields = Object.entries(ag.fields || {}).map(([name, f]) => h('tr', {},
    h('td', {}, name), h('td', {}, f.type),
    h('td', {}, defined(f.metrics).map(([k, v]) => h('div', {}, `${metricName(k)}: `, h('b', {}, fmtNumber(v, 3)))),
      undefinedCount(f.metrics) ? h('div', { class: 'muted' }, `${undefinedCount(f.metrics)} more undefined on this data`) : null),
    num('pairable', f.counts ? f.counts.items_pairable ?? f.counts.pairable_items ?? null : null)));

  const ann = ag.per_annotator || [];
  const idx = new Map();
  const names = ann.map((a, i) => {
    idx.set(a.annotator_id, i);
    return a.organization_id === ag.project_org_id ? a.annotator : `${a.annotator}@${a.organization}`;
  });
  const pairs = new Map();
  for (const q of ag.pairwise || []) {
    const i = idx.get(q.a_id), j = idx.get(q.b_id);
    if (i === undefined || j === undefined) continue;
    pairs.set(i + ',' + j, q);
    pairs.set(j + ',' + i, q);
  }
  const cell = (i, j) => {
    if (i === j) return null;
    const q = pairs.get(i + ',' + j);
    return q ? { value: q.percent_agreement, items: q.items } : null;
  };

  const items = (ag.per_item || []).filter((x) => x.agreement !== null)
    .sort((a, b) => a.agreement - b.agreement || Number(a.item) - Number(b.item)).slice(0, 15);
  const labels = Object.entries(ag.labels || {}).map(([label, n]) => ({ label, value: n }));
  const gold = new Map();
  for (const g of (ag.gold && ag.gold.per_annotator) || []) gold.set(g.annotator_id, g);

  return h('section', {},
    h('h2', {}, p.name, h('span', { class: 'muted' }, ` #${p.id}`), ' — quality'),
    tabs(id, 'quality'),
    h('div', { class: 'tiles' },
      tile('Percent agreement', pa === null ? '—' : fmtNumber(pa * 100, 1) + ' %', 'percent_agreement', pa === null ? '' : pa,
        'pairs of annotations of a task with the same label'),
      tile('Krippendorff\u2019s alpha', alpha === null ? '—' : fmtNumber(alpha, 3), 'alpha', alpha === null ? '' : alpha, alphaReading(alpha)),
      tile('Tasks with 2+ annotations', fmtNumber(ag.counts ? ag.counts.items_pairable ?? ag.counts.pairable_items : null), 'pairable'),
      tile('Gold accuracy', ag.gold && ag.gold.accuracy && ag.gold.accuracy.value !== null ?
        fmtNumber(ag.gold.accuracy.value * 100, 1) + ' %' : '—', 'gold', '',
      ag.gold && ag.gold.accuracy && ag.gold.accuracy.compared ? `over ${fmtNumber(ag.gold.accuracy.compared)} gold answers` : 'no gold answer compared yet')),
    h('h3', {}, 'Agreement per field'),
    h('table', { class: 'data', id: 'fields' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Field'), h('th', {}, 'Type'), h('th', {}, 'Figures (1 = perfect agreement)'), h('th', { class: 'num' }, 'Tasks compared'))),
      h('tbody', {}, fields)),
    h('div', { class: 'charts' },
      ann.length > 1 ? heatmap(names, cell, { title: 'Annotator × annotator: % of shared tasks labelled alike' })
        : h('p', { class: 'muted' }, 'The heatmap needs two annotators with tasks in common.'),
      barChart(labels, { title: 'Labels given (all annotations)', xLabel: 'label', yLabel: 'annotations' })),
    h('h3', {}, 'Agreement over time'),
    h('div', { class: 'charts', id: 'over-time' },
      Object.entries((ag.over_time && ag.over_time.fields) || {}).map(([name, pts]) => overTimeChart(name, pts, ag.over_time.bucket))),
    h('p', { class: 'note' }, 'Per choice field, the tasks that completed in each ' + ((ag.over_time && ag.over_time.bucket) || 'bucket') +
      ' (by their last annotation) with two or more annotations: percent agreement = the share of their pairs of annotations that agree; ' +
      'Krippendorff\u2019s alpha (nominal) = agreement beyond chance, left out of a bucket holding one label only.'),
    h('h3', {}, 'Confusion against the consensus'),
    h('div', { class: 'charts', id: 'confusion' },
      Object.entries(ag.confusion || {}).map(([name, c]) => confusionBlock(name, c))),
    h('p', { class: 'note' }, 'Rows: the label an annotator gave; columns: the consensus of the task, its unique most common label ' +
      '(complete tasks with two or more annotations). Off the diagonal: annotations that went against the majority — ' +
      'a dark cell names two labels the crew mixes up.'),
    h('h3', {}, 'Annotators against the majority and gold'),
    h('table', { class: 'data', id: 'quality-annotators' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Annotator'), h('th', { class: 'num' }, 'Annotations'),
        h('th', { class: 'num' }, 'Agrees with the others\u2019 majority'), h('th', { class: 'num' }, 'Gold accuracy'))),
      h('tbody', {}, ann.map((a, i) => {
        const g = gold.get(a.annotator_id);
        const mv = a.majority_agreement ? a.majority_agreement.value : null;
        return h('tr', {}, h('td', {}, names[i]), num('judgements', a.judgements), pct('majority', mv),
          h('td', { class: 'num' }, g && g.accuracy !== null && g.accuracy !== undefined ?
            `${fmtNumber(metricValue(g.accuracy) * 100, 1)} % of ${fmtNumber(g.compared)}` : '—'));
      }))),
    h('h3', {}, 'Lowest-agreement tasks'),
    items.length ? h('table', { class: 'data', id: 'low-tasks' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Task'), h('th', { class: 'num' }, 'Annotations'),
        h('th', { class: 'num' }, 'Agreeing pairs'), h('th', {}, 'Majority label'))),
      h('tbody', {}, items.map((x) => {
        const task = String(x.item).split('/')[0];
        return h('tr', { 'data-task': task }, h('td', {}, h('a', { href: `#/project/${id}/task/${task}`, class: 'task-link' }, '#' + x.item)),
          num('judgements', x.judgements), pct('agreement', x.agreement),
          h('td', {}, x.majority_label === null ? 'tie' : String(x.majority_label)));
      })))
      : h('p', { class: 'muted' }, 'No task has two annotations yet.'),
    h('p', { class: 'note' }, `Open a task to see what each annotator said (or: quorumctl task ${id} TASK). ` +
      'A task shown as 12/2 is task 12 in relabel round 2.'));
}

// --- one task ------------------------------------------------------------------------------

function valueText(v) {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

// The unique most common value of a round's annotations, or null (a tie).
function majority(anns) {
  const n = new Map();
  for (const a of anns) n.set(valueText(a.value), (n.get(valueText(a.value)) || 0) + 1);
  const top = [...n.entries()].sort((a, b) => b[1] - a[1]);
  if (!top.length || (top.length > 1 && top[0][1] === top[1][1])) return null;
  return top[0][0];
}

export async function taskView(id, taskId, me) {
  const [p, t] = await Promise.all([api.get(`/v1/projects/${id}`), api.get(`/v1/projects/${id}/tasks/${taskId}`)]);
  const own = me.organization_id === p.org_id;
  const rounds = new Map();
  for (const a of t.annotations) {
    if (!rounds.has(a.round)) rounds.set(a.round, []);
    rounds.get(a.round).push(a);
  }
  const maj = new Map([...rounds.entries()].map(([r, anns]) => [r, majority(anns)]));
  const rows = t.annotations.map((a) => {
    const m = maj.get(a.round);
    const v = valueText(a.value);
    const agrees = m === null || rounds.get(a.round).length < 2 ? null : v === m;
    return h('tr', { 'data-annotation': a.annotation_id, class: agrees === false ? 'disagrees' : '' },
      h('td', { class: 'name', 'data-k': 'annotator' }, a.organization_id === p.org_id ? a.annotator : `${a.annotator}@${a.organization}`),
      h('td', { 'data-k': 'organization' }, a.organization),
      num('round', a.round),
      h('td', { 'data-k': 'created_at' }, new Date(a.created_at).toLocaleString()),
      h('td', { class: 'value', 'data-k': 'value', 'data-value': v }, v),
      h('td', { 'data-k': 'agrees' }, agrees === null ? '—' : agrees ? 'yes' : 'no'));
  });
  const rv = t.review;
  return h('section', {},
    h('h2', {}, p.name, h('span', { class: 'muted' }, ` #${p.id}`), ` — task ${t.task_id}`),
    tabs(id, 'task'),
    h('div', { class: 'tiles' },
      tile('State', t.state, 'state', t.state),
      tile('Annotations', `${fmtNumber(t.done_count)} of ${fmtNumber(t.required)}`, 'done_count', t.done_count,
        own ? 'in its current round' : 'in its current round, every organization'),
      tile('Round', fmtNumber(t.round), 'round', t.round, t.round > 1 ? 'relabelled' : 'as imported'),
      tile('Majority of this round', !(rounds.get(t.round) || []).length ? '—' : maj.get(t.round) === null ? 'tie' : maj.get(t.round),
        'majority', maj.get(t.round) || '', (rounds.get(t.round) || []).length < 2 ? 'needs two annotations'
          : maj.get(t.round) === null ? 'no label holds more annotations than every other' : 'the most common value shown'),
      tile('External id', t.external_id === null ? '—' : t.external_id, 'external_id', t.external_id === null ? '' : t.external_id),
      'gold' in t ? tile('Gold answer', t.gold === null ? '—' : valueText(t.gold), 'gold', t.gold === null ? '' : valueText(t.gold),
        'shown to the owner\u2019s admins and managers only') : null,
      tile('Review', rv ? (rv.decision || rv.state) : own ? 'none' : '—', 'review', rv ? (rv.decision || rv.state) : '',
        rv && rv.value !== null && rv.value !== undefined ? `final value: ${valueText(rv.value)}` + (rv.reviewer ? `, by ${rv.reviewer}` : '')
          : own ? 'never selected for review' : 'not shown to vendors')),
    h('h3', {}, 'Data'),
    h('pre', { class: 'task-data', id: 'task-data' }, JSON.stringify(t.data, null, 2)),
    h('h3', {}, 'Annotations' + (own ? '' : ' (your organization\u2019s crew only)')),
    h('table', { class: 'data', id: 'task-annotations' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Annotator'), h('th', {}, 'Organization'), h('th', { class: 'num' }, 'Round'),
        h('th', {}, 'When (your clock)'), h('th', {}, 'Value given'), h('th', {}, 'With the majority of its round'))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No annotation yet.')))),
    h('p', { class: 'note' }, 'The majority is the unique most common value of a round\u2019s annotations shown here; ' +
      '— when they tie or there is one. ' + (own ? '' : 'You see your crew\u2019s annotations only, so the majority is theirs. ') +
      `Command line: quorumctl task ${id} ${t.task_id}`),
    h('p', {}, own ? h('a', { href: `#/project/${id}/quality` }, '← Back to quality') : h('a', { href: `#/project/${id}` }, '← Back to the project')));
}
