// charts.js - small hand-written SVG charts (no library): a line chart with
// labelled axes, a bar chart, a heatmap and a progress bar. Each returns an
// SVG or HTML element built with the DOM (no innerHTML of data), so text
// from the API can never become markup.

const NS = 'http://www.w3.org/2000/svg';

function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Rounded tick values covering [lo, hi].
function ticks(lo, hi, n) {
  if (hi <= lo) hi = lo + 1;
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  let v = Math.floor(lo / step) * step;
  for (; v < hi - step * 1e-9; v += step) out.push(v);
  out.push(v); // the last tick is at or above hi: nothing drawn is off the chart
  return out;
}

export function fmtNumber(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  return Number(v).toLocaleString('en-US', { maximumFractionDigits: digits === undefined ? 0 : digits });
}

export function fmtClock(ms) {
  const d = new Date(ms);
  return d.toTimeString().slice(0, 5);
}

// A line chart. series: [{name, points: [[x, y]...], dashed, cls, dots}], x
// in ms since the epoch (shown as hh:mm, or by opts.xFormat(ms)). opts:
// {title, xLabel, yLabel, width, height, yMax, yMin (below 0 when a point
// is), xFormat}. A series with dots marks each point with a circle (class
// "pt", its values in data-x and data-y) that names it on hover.
export function lineChart(series, opts) {
  const W = opts.width || 560, H = opts.height || 240;
  const L = 64, R = 16, T = 44, B = 44;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': opts.title });
  svg.appendChild(el('text', { x: 8, y: 16, class: 'chart-title' }, opts.title));
  const pts = series.flatMap((s) => s.points);
  if (!pts.length) {
    svg.appendChild(el('text', { x: W / 2, y: H / 2, class: 'chart-empty', 'text-anchor': 'middle' },
      opts.empty || 'no data yet'));
    return svg;
  }
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  if (x1 === x0) x1 = x0 + 60000;
  const ylo = Math.min(opts.yMin || 0, ...pts.map((p) => p[1]));
  const yt = ticks(ylo, Math.max(opts.yMax || 0, ...pts.map((p) => p[1])) || 1, 4);
  const y0 = yt[0], y1 = yt[yt.length - 1];
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const fx = opts.xFormat || fmtClock;
  for (const v of yt) {
    svg.appendChild(el('line', { x1: L, x2: W - R, y1: sy(v), y2: sy(v), class: 'grid' }));
    svg.appendChild(el('text', { x: L - 6, y: sy(v) + 4, 'text-anchor': 'end', class: 'tick' }, fmtNumber(v, 1)));
  }
  // With few distinct x (buckets), a tick at each; else 6 evenly spread.
  const xs = [...new Set(pts.map((p) => p[0]))].sort((a, b) => a - b);
  const xticks = opts.xFormat && xs.length <= 8 ? xs : [0, 1, 2, 3, 4, 5].map((i) => x0 + ((x1 - x0) * i) / 5);
  for (const x of xticks)
    svg.appendChild(el('text', { x: sx(x), y: H - B + 16, 'text-anchor': 'middle', class: 'tick' }, fx(x)));
  svg.appendChild(el('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
  svg.appendChild(el('line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axis' }));
  svg.appendChild(el('text', { x: (L + W - R) / 2, y: H - 6, 'text-anchor': 'middle', class: 'axis-label' }, opts.xLabel));
  svg.appendChild(el('text', { x: 14, y: (T + H - B) / 2, 'text-anchor': 'middle', class: 'axis-label',
    transform: `rotate(-90 14 ${(T + H - B) / 2})` }, opts.yLabel));
  let lx = L;
  for (const s of series) {
    if (!s.points.length) continue;
    const d = s.points.map((p, i) => (i ? 'L' : 'M') + sx(p[0]).toFixed(1) + ' ' + sy(p[1]).toFixed(1)).join(' ');
    svg.appendChild(el('path', { d, class: 'line ' + (s.cls || ''), 'stroke-dasharray': s.dashed ? '5 4' : 'none' }));
    if (s.dots) {
      for (const p of s.points) {
        const c = el('circle', { cx: sx(p[0]).toFixed(1), cy: sy(p[1]).toFixed(1), r: 3.5, class: 'pt ' + (s.cls || ''),
          'data-x': String(p[0]), 'data-y': String(p[1]) });
        c.appendChild(el('title', {}, `${s.name}, ${fx(p[0])}: ${fmtNumber(p[1], 3)}` + (p[2] ? ` (${p[2]})` : '')));
        svg.appendChild(c);
      }
    }
    svg.appendChild(el('line', { x1: lx, x2: lx + 18, y1: 30, y2: 30, class: 'line ' + (s.cls || ''),
      'stroke-dasharray': s.dashed ? '5 4' : 'none' }));
    svg.appendChild(el('text', { x: lx + 22, y: 34, class: 'legend' }, s.name));
    lx += 40 + 6 * s.name.length;
  }
  return svg;
}

// Vertical bars. bars: [{label, value}]; opts as lineChart (no x axis ticks
// but each bar's label).
export function barChart(bars, opts) {
  const W = opts.width || Math.max(560, 64 + 16 + 90 * (opts.labelEvery ? 0 : bars.length)), H = opts.height || 240;
  const L = 64, R = 16, T = 28, B = 56;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': opts.title });
  if (W > 560) svg.style.width = W + 'px';
  svg.appendChild(el('text', { x: 8, y: 16, class: 'chart-title' }, opts.title));
  if (!bars.length) {
    svg.appendChild(el('text', { x: W / 2, y: H / 2, class: 'chart-empty', 'text-anchor': 'middle' }, 'no data yet'));
    return svg;
  }
  const yt = ticks(0, Math.max(...bars.map((b) => b.value || 0)) || 1, 4);
  const y1 = yt[yt.length - 1];
  const sy = (y) => H - B - (y / y1) * (H - T - B);
  for (const v of yt) {
    svg.appendChild(el('line', { x1: L, x2: W - R, y1: sy(v), y2: sy(v), class: 'grid' }));
    svg.appendChild(el('text', { x: L - 6, y: sy(v) + 4, 'text-anchor': 'end', class: 'tick' }, fmtNumber(v, 1)));
  }
  const bw = (W - L - R) / bars.length;
  bars.forEach((b, i) => {
    const x = L + i * bw + bw * 0.15;
    const r = el('rect', { x, y: sy(b.value || 0), width: bw * 0.7, height: H - B - sy(b.value || 0), class: 'bar' });
    r.appendChild(el('title', {}, b.label + ': ' + fmtNumber(b.value, 1)));
    svg.appendChild(r);
    const every = opts.labelEvery || 1;
    if (i % every === 0 || i === bars.length - 1) {
      const lab = shorten(b.label, Math.max(4, Math.floor((bw * every) / 6.5)));
      svg.appendChild(el('text', { x: x + bw * 0.35, y: H - B + 14, 'text-anchor': 'middle', class: 'tick' }, lab));
    }
  });
  svg.appendChild(el('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
  svg.appendChild(el('text', { x: (L + W - R) / 2, y: H - 6, 'text-anchor': 'middle', class: 'axis-label' }, opts.xLabel));
  svg.appendChild(el('text', { x: 14, y: (T + H - B) / 2, 'text-anchor': 'middle', class: 'axis-label',
    transform: `rotate(-90 14 ${(T + H - B) / 2})` }, opts.yLabel));
  return svg;
}

// A square heatmap of values 0-1 (null: no shared items). names: the row
// and column labels; cell(i, j) -> {value, items}.
export function heatmap(names, cell, opts) {
  const n = names.length;
  const C = Math.max(28, Math.min(56, 420 / Math.max(n, 1)));
  const L = 170, T = 160; // room for names up to 26 characters
  const W = L + n * C + 90, H = T + n * C + 20;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart heatmap', role: 'img', 'aria-label': opts.title,
    width: W, height: H });
  svg.appendChild(el('text', { x: 4, y: 16, class: 'chart-title' }, opts.title));
  const short = (s) => shorten(s, 26);
  names.forEach((nm, i) => {
    svg.appendChild(el('text', { x: L - 6, y: T + i * C + C / 2 + 4, 'text-anchor': 'end', class: 'tick' }, short(nm)));
    svg.appendChild(el('text', { x: 0, y: 0, class: 'tick',
      transform: `translate(${L + i * C + C / 2 + 4} ${T - 6}) rotate(-60)` }, short(nm)));
  });
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const c = cell(i, j);
      const v = c ? c.value : null;
      const r = el('rect', { x: L + j * C, y: T + i * C, width: C - 2, height: C - 2,
        class: v === null ? 'cell-none' : 'cell', fill: v === null ? '' : colour(v) });
      r.appendChild(el('title', {}, `${names[i]} × ${names[j]}: ` +
        (v === null ? 'no task in common' : `${fmtNumber(v * 100, 0)} % agree over ${c.items} tasks`)));
      svg.appendChild(r);
      if (v !== null && C >= 28)
        svg.appendChild(el('text', { x: L + j * C + C / 2 - 1, y: T + i * C + C / 2 + 4, 'text-anchor': 'middle',
          class: 'cell-text' }, fmtNumber(v * 100, 0)));
    }
  }
  // The colour key.
  const kx = L + n * C + 20;
  for (let k = 0; k <= 10; k++)
    svg.appendChild(el('rect', { x: kx, y: T + (10 - k) * 12, width: 16, height: 12, fill: colour(k / 10) }));
  svg.appendChild(el('text', { x: kx + 20, y: T + 10, class: 'tick' }, '100 %'));
  svg.appendChild(el('text', { x: kx + 20, y: T + 130, class: 'tick' }, '0 %'));
  return svg;
}

// A confusion matrix: labels on both axes, matrix[i][j] the count of row
// label i (an annotator's label) on tasks whose consensus is column label j.
// Each cell shows its count and its share of the row, coloured by that
// share (the diagonal, agreeing with the consensus, in green; the rest in
// red); each rect carries data-row, data-col, data-count and data-share.
export function confusionMatrix(labels, matrix, opts) {
  const n = labels.length;
  const C = Math.max(44, Math.min(64, 480 / Math.max(n, 1)));
  const L = 150, T = 130;
  const W = L + n * C + 110, H = T + n * C + 44;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart heatmap confusion', role: 'img',
    'aria-label': opts.title, width: W, height: H });
  svg.appendChild(el('text', { x: 4, y: 16, class: 'chart-title' }, opts.title));
  svg.appendChild(el('text', { x: L + (n * C) / 2, y: 36, 'text-anchor': 'middle', class: 'axis-label' },
    opts.colLabel || 'consensus label'));
  svg.appendChild(el('text', { x: 14, y: T + (n * C) / 2, 'text-anchor': 'middle', class: 'axis-label',
    transform: `rotate(-90 14 ${T + (n * C) / 2})` }, opts.rowLabel || 'label given'));
  const short = (s) => shorten(s, 18);
  labels.forEach((nm, i) => {
    svg.appendChild(el('text', { x: L - 6, y: T + i * C + C / 2 + 4, 'text-anchor': 'end', class: 'tick' }, short(nm)));
    svg.appendChild(el('text', { x: 0, y: 0, class: 'tick',
      transform: `translate(${L + i * C + C / 2 + 4} ${T - 6}) rotate(-60)` }, short(nm)));
  });
  svg.appendChild(el('text', { x: L + n * C + 10, y: T - 8, class: 'tick' }, 'row total'));
  for (let i = 0; i < n; i++) {
    const row = matrix[i] || [];
    const total = row.reduce((a, b) => a + b, 0);
    for (let j = 0; j < n; j++) {
      const v = row[j] || 0;
      const share = total ? v / total : null;
      const fill = share === null || v === 0 ? '#f4f5f7' : i === j ? `hsl(120, 55%, ${(92 - 40 * share).toFixed(0)}%)`
        : `hsl(0, 70%, ${(94 - 34 * share).toFixed(0)}%)`;
      const r = el('rect', { x: L + j * C, y: T + i * C, width: C - 2, height: C - 2, class: 'conf-cell', fill,
        'data-row': labels[i], 'data-col': labels[j], 'data-count': String(v), 'data-share': share === null ? '' : String(share) });
      r.appendChild(el('title', {}, `given ${labels[i]}, consensus ${labels[j]}: ${fmtNumber(v)} annotation(s)` +
        (share === null ? '' : `, ${fmtNumber(share * 100, 1)} % of the ${fmtNumber(total)} labelled ${labels[i]}`)));
      svg.appendChild(r);
      svg.appendChild(el('text', { x: L + j * C + C / 2 - 1, y: T + i * C + C / 2 - 1, 'text-anchor': 'middle',
        class: 'cell-text' }, fmtNumber(v)));
      if (share !== null)
        svg.appendChild(el('text', { x: L + j * C + C / 2 - 1, y: T + i * C + C / 2 + 12, 'text-anchor': 'middle',
          class: 'cell-sub' }, fmtNumber(share * 100, 0) + ' %'));
    }
    svg.appendChild(el('text', { x: L + n * C + 10, y: T + i * C + C / 2 + 4, class: 'tick' }, fmtNumber(total)));
  }
  svg.appendChild(el('text', { x: L, y: T + n * C + 20, class: 'tick' },
    'each cell: annotations, and their share of the row (the label given)'));
  return svg;
}

// s in at most n characters, its middle left out: annotators' names often
// differ only at their end ("sim-3f1e9a06-1", "sim-3f1e9a06-2").
export function shorten(s, n) {
  if (s.length <= n) return s;
  const tail = Math.ceil((n - 1) / 2);
  return s.slice(0, n - 1 - tail) + '…' + s.slice(s.length - tail);
}

// 0 (red) .. 1 (green), through yellow.
export function colour(v) {
  const h = Math.max(0, Math.min(1, v)) * 120;
  return `hsl(${h.toFixed(0)}, 70%, 62%)`;
}

// A progress bar: done of total, with the numbers in words beside it.
export function progressBar(done, total) {
  const wrap = document.createElement('div');
  wrap.className = 'progress';
  const bar = document.createElement('div');
  bar.className = 'progress-bar';
  const fill = document.createElement('div');
  fill.className = 'progress-fill';
  const pct = total ? (100 * done) / total : 0;
  fill.style.width = pct.toFixed(1) + '%';
  bar.appendChild(fill);
  const txt = document.createElement('span');
  txt.className = 'progress-text';
  txt.textContent = `${fmtNumber(done)} of ${fmtNumber(total)} tasks (${fmtNumber(pct, 1)} %)`;
  wrap.appendChild(bar);
  wrap.appendChild(txt);
  return wrap;
}
