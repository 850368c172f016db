// form.js - the labeler's form for a project with a label schema: one block
// per field (choice, multi_choice, rating, text, spans selected in the
// task's text, boxes drawn on the task's image), driven by the keyboard
// (Tab moves between fields, the number keys pick in the active one,
// Backspace removes the last span or box, Enter submits) or the mouse.
// value() gives the submission's "labels" object, or throws the reason a
// field is not ready (a required field left empty).

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// UTF-16 offset in s -> code points before it (the API counts code points).
function codePoints(s, u16) {
  return Array.from(s.slice(0, u16)).length;
}

export class SchemaForm {
  constructor(schema, root) {
    this.fields = schema.fields;
    this.root = root;
    this.active = 0;
    this.data = {};
    this.values = {};
    this.pick = {}; // spans, boxes: the label (index) the next one gets
  }

  // Keys of the task data a field shows itself (the text of spans, the image of boxes).
  overKeys() {
    return this.fields.filter((f) => f.type === 'spans' || f.type === 'boxes').map((f) => f.over);
  }

  reset(data) {
    this.data = data || {};
    this.values = {};
    for (const f of this.fields) {
      if (f.type === 'multi_choice' || f.type === 'spans' || f.type === 'boxes') this.values[f.name] = [];
      if (f.type === 'text') this.values[f.name] = '';
      this.pick[f.name] = 0;
    }
    this.active = 0;
    this.render();
  }

  options(f) {
    if (f.type === 'choice' || f.type === 'multi_choice') return f.choices;
    if (f.type === 'spans' || f.type === 'boxes') return f.labels;
    if (f.type === 'rating') {
      const n = Math.round((f.max - f.min) / f.step);
      const out = [];
      for (let k = 0; k <= n; k++) out.push(+(f.min + k * f.step).toPrecision(15));
      return out;
    }
    return [];
  }

  choose(fi, i) {
    const f = this.fields[fi];
    const opts = this.options(f);
    if (i < 0 || i >= opts.length) return;
    const v = this.values;
    if (f.type === 'choice' || f.type === 'rating') v[f.name] = v[f.name] === opts[i] ? undefined : opts[i];
    else if (f.type === 'multi_choice') {
      const a = v[f.name];
      const at = a.indexOf(opts[i]);
      if (at >= 0) a.splice(at, 1);
      else a.push(opts[i]);
    } else if (f.type === 'spans') {
      this.pick[f.name] = i;
      this.addSpan(fi);
    } else if (f.type === 'boxes') this.pick[f.name] = i;
    this.active = fi;
    this.render();
  }

  // The selection inside the field's text, as a span of the picked label.
  addSpan(fi) {
    const f = this.fields[fi];
    const sel = window.getSelection();
    const text = typeof this.data[f.over] === 'string' ? this.data[f.over] : '';
    if (!sel || sel.isCollapsed || !text) return;
    const at = (node, off) => {
      const seg = node.nodeType === 3 ? node.parentElement : node;
      if (!seg || !seg.dataset || seg.dataset.start === undefined || seg.dataset.field !== f.name) return null;
      return Number(seg.dataset.start) + off;
    };
    let a = at(sel.anchorNode, sel.anchorOffset), b = at(sel.focusNode, sel.focusOffset);
    if (a === null || b === null) return;
    if (a > b) [a, b] = [b, a];
    const start = codePoints(text, a), end = codePoints(text, b);
    if (end <= start) return;
    const label = f.labels[this.pick[f.name]];
    const spans = this.values[f.name];
    if (!spans.some((s) => s.start === start && s.end === end && s.label === label)) spans.push({ start, end, label });
    sel.removeAllRanges();
  }

  removeLast(fi) {
    const f = this.fields[fi];
    if (f.type === 'spans' || f.type === 'boxes') this.values[f.name].pop();
    this.render();
  }

  // Handles a key; returns true when it was the form's.
  key(ev) {
    const f = this.fields[this.active];
    if (ev.key === 'Tab') {
      const n = this.fields.length;
      this.active = (this.active + (ev.shiftKey ? n - 1 : 1)) % n;
      this.render();
      const t = this.root.querySelector('.field.active textarea');
      if (t) t.focus();
      return true;
    }
    if (/^[1-9]$/.test(ev.key) && f.type !== 'text') {
      this.choose(this.active, Number(ev.key) - 1);
      return true;
    }
    if (ev.key === 'Backspace' && (f.type === 'spans' || f.type === 'boxes')) {
      this.removeLast(this.active);
      return true;
    }
    return false;
  }

  value() {
    const out = {};
    for (const f of this.fields) {
      let v = this.values[f.name];
      if (f.type === 'text' && v === '') v = undefined;
      if (f.type === 'multi_choice') v = f.choices.filter((c) => v.includes(c));
      if (v === undefined) {
        if (f.required) throw new Error(`${f.name} is required`);
        continue;
      }
      out[f.name] = v;
    }
    return out;
  }

  render() {
    this.root.replaceChildren();
    this.fields.forEach((f, fi) => {
      const box = el('section', 'field' + (fi === this.active ? ' active' : ''));
      box.dataset.field = f.name;
      box.addEventListener('mousedown', () => {
        if (this.active !== fi) {
          this.active = fi;
          for (const s of this.root.querySelectorAll('.field')) s.classList.toggle('active', s === box);
        }
      });
      const head = el('h3', null, f.name);
      head.appendChild(el('span', 'muted', ` ${f.type.replace('_', ' ')}${f.required ? '' : ', optional'}`));
      box.appendChild(head);
      if (f.type === 'spans') box.appendChild(this.spanText(f));
      if (f.type === 'boxes') box.appendChild(this.image(f, fi));
      if (f.type === 'text') {
        const t = el('textarea', 'text-field');
        t.maxLength = f.max_length;
        t.value = this.values[f.name];
        t.rows = 2;
        t.addEventListener('input', () => {
          this.values[f.name] = t.value;
        });
        box.appendChild(t);
      }
      const opts = this.options(f);
      if (opts.length) {
        const row = el('div', 'choices');
        opts.forEach((o, i) => {
          const b = el('button', 'choice');
          b.type = 'button';
          b.dataset.value = String(o);
          const v = this.values[f.name];
          const on = f.type === 'multi_choice' ? v.includes(o) : f.type === 'spans' || f.type === 'boxes'
            ? this.pick[f.name] === i : v === o;
          if (on) b.classList.add('on');
          // The number keys act on the active field: only its buttons show them.
          if (i < 9 && fi === this.active) b.append(el('kbd', null, String(i + 1)), ' ');
          b.append(String(o));
          // A click on a label must not drop the text selected for a span.
          b.addEventListener('mousedown', (e) => e.preventDefault());
          b.addEventListener('click', () => this.choose(fi, i));
          row.appendChild(b);
        });
        box.appendChild(row);
      }
      if (f.type === 'spans' || f.type === 'boxes') {
        const list = el('div', 'muted', this.values[f.name].length ?
          this.values[f.name].map((s) => f.type === 'spans' ? `${s.label} [${s.start}, ${s.end})`
            : `${s.label} (${s.x.toFixed(1)} %, ${s.y.toFixed(1)} %, ${s.width.toFixed(1)} × ${s.height.toFixed(1)} %)`).join('; ')
          : f.type === 'spans' ? 'Select text, then press the number of its label (Backspace removes the last).'
            : 'Pick a label, then drag on the image (Backspace removes the last).');
        list.dataset.k = 'items';
        box.appendChild(list);
      }
      this.root.appendChild(box);
    });
  }

  // The text of a spans field, cut at span edges so each piece knows its
  // UTF-16 start (data-start): a selection's ends are read from there.
  spanText(f) {
    const text = typeof this.data[f.over] === 'string' ? this.data[f.over] : '';
    const p = el('p', 'span-text');
    p.dataset.field = f.name;
    const cps = Array.from(text);
    const u16 = [0];
    for (const c of cps) u16.push(u16[u16.length - 1] + c.length);
    const cuts = new Set([0, cps.length]);
    for (const s of this.values[f.name]) {
      cuts.add(s.start);
      cuts.add(s.end);
    }
    const pts = [...cuts].sort((a, b) => a - b);
    for (let i = 0; i + 1 < pts.length; i++) {
      const a = pts[i], b = pts[i + 1];
      const seg = el('span', null, cps.slice(a, b).join(''));
      seg.dataset.start = String(u16[a]);
      seg.dataset.field = f.name;
      const marked = this.values[f.name].filter((s) => s.start <= a && s.end >= b);
      if (marked.length) {
        seg.className = 'marked';
        seg.title = marked.map((s) => s.label).join(', ');
      }
      p.appendChild(seg);
    }
    return p;
  }

  // The image of a boxes field, boxes drawn over it by dragging.
  image(f, fi) {
    const wrap = el('div', 'box-wrap');
    const url = this.data[f.over];
    if (typeof url !== 'string') {
      wrap.textContent = `the task's data has no image in "${f.over}"`;
      return wrap;
    }
    const img = el('img', 'box-image');
    img.src = url;
    img.alt = 'the task\u2019s image';
    img.draggable = false;
    wrap.appendChild(img);
    const draw = (b, cls) => {
      const d = el('div', cls);
      d.style.left = b.x + '%';
      d.style.top = b.y + '%';
      d.style.width = b.width + '%';
      d.style.height = b.height + '%';
      if (b.label) d.appendChild(el('span', 'box-label', b.label));
      wrap.appendChild(d);
      return d;
    };
    for (const b of this.values[f.name]) draw(b, 'box');
    let start = null, ghost = null;
    const pos = (ev) => {
      const r = img.getBoundingClientRect();
      return [Math.min(100, Math.max(0, ((ev.clientX - r.left) / r.width) * 100)),
        Math.min(100, Math.max(0, ((ev.clientY - r.top) / r.height) * 100))];
    };
    const rect = (a, b) => ({ x: Math.min(a[0], b[0]), y: Math.min(a[1], b[1]),
      width: Math.abs(a[0] - b[0]), height: Math.abs(a[1] - b[1]) });
    wrap.addEventListener('pointerdown', (ev) => {
      ev.preventDefault();
      this.active = fi;
      start = pos(ev);
      ghost = draw({ x: start[0], y: start[1], width: 0, height: 0 }, 'box ghost');
      wrap.setPointerCapture(ev.pointerId);
    });
    wrap.addEventListener('pointermove', (ev) => {
      if (!start) return;
      const r = rect(start, pos(ev));
      ghost.style.left = r.x + '%';
      ghost.style.top = r.y + '%';
      ghost.style.width = r.width + '%';
      ghost.style.height = r.height + '%';
    });
    wrap.addEventListener('pointerup', (ev) => {
      if (!start) return;
      const r = rect(start, pos(ev));
      start = null;
      const round = (v) => Math.round(v * 100) / 100;
      if (r.width >= 0.5 && r.height >= 0.5) {
        const b = { x: round(r.x), y: round(r.y), width: round(r.width), height: round(r.height), label: f.labels[this.pick[f.name]] };
        b.width = Math.min(b.width, round(100 - b.x));
        b.height = Math.min(b.height, round(100 - b.y));
        this.values[f.name].push(b);
      }
      this.render();
    });
    return wrap;
  }
}
