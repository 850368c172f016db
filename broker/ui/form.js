// form.js - the labeler's form for a project with a label schema: one block
// per field (choice, multi_choice, rating, text, spans selected in the
// task's text, boxes drawn on the task's image), driven by the keyboard
// (Tab moves between fields, the number keys pick in the active one,
// Backspace removes the selected or else the last span or box, Enter
// submits) or the mouse (a click on a span or a box selects it: a number
// key then relabels it, the arrows move a span's end (Shift: its start); a
// box is moved by dragging it and resized by its corner).
// A model's suggestion (the lease's prediction, show_predictions) pre-fills
// the form: every field it gives, spans and boxes as regions drawn already,
// each field marked "suggested" until the annotator changes it ("edited").
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
    this.sel = {}; // spans, boxes: the index of the selected one, or -1
    this.suggested = null; // the suggestion's value per field, as the form holds it
  }

  // Keys of the task data a field shows itself (the text of spans, the image of boxes).
  overKeys() {
    return this.fields.filter((f) => f.type === 'spans' || f.type === 'boxes').map((f) => f.over);
  }

  // A new task: its data, and the labels a model suggests for it (an
  // object of field values, or null). A suggested value the field cannot
  // hold (not one of its choices, not on its grid) is left out.
  reset(data, suggestion) {
    this.data = data || {};
    this.values = {};
    this.suggested = null;
    for (const f of this.fields) {
      if (f.type === 'multi_choice' || f.type === 'spans' || f.type === 'boxes') this.values[f.name] = [];
      if (f.type === 'text') this.values[f.name] = '';
      this.pick[f.name] = 0;
      this.sel[f.name] = -1;
    }
    if (suggestion && typeof suggestion === 'object') {
      this.suggested = {};
      for (const f of this.fields) {
        const v = this.fit(f, suggestion[f.name]);
        if (v === undefined) continue;
        this.suggested[f.name] = v;
        this.values[f.name] = JSON.parse(JSON.stringify(v));
      }
    }
    this.active = 0;
    this.render();
  }

  // A suggested value as field f holds it, or undefined when it cannot.
  fit(f, v) {
    if (v === undefined || v === null) return undefined;
    const opts = this.options(f);
    if (f.type === 'choice') return opts.includes(v) ? v : undefined;
    if (f.type === 'rating') return typeof v === 'number' ? opts.find((o) => Math.abs(o - v) < 1e-9 * Math.max(1, Math.abs(v))) : undefined;
    if (f.type === 'multi_choice') return Array.isArray(v) ? opts.filter((c) => v.includes(c)) : undefined;
    if (f.type === 'text') return typeof v === 'string' ? v : undefined;
    if (!Array.isArray(v)) return undefined;
    if (f.type === 'spans') {
      return v.filter((s) => s && Number.isInteger(s.start) && Number.isInteger(s.end) && opts.includes(s.label))
        .map((s) => ({ start: s.start, end: s.end, label: s.label }));
    }
    return v.filter((b) => b && ['x', 'y', 'width', 'height'].every((k) => typeof b[k] === 'number') && opts.includes(b.label))
      .map((b) => ({ x: b.x, y: b.y, width: b.width, height: b.height, label: b.label }));
  }

  // "suggested" while field f holds the suggestion's value, "edited" once
  // changed, null for a field the suggestion does not give.
  mark(f) {
    if (!this.suggested || !(f.name in this.suggested)) return null;
    const a = this.suggested[f.name], b = this.values[f.name];
    const same = f.type === 'multi_choice' ? JSON.stringify(f.choices.filter((c) => a.includes(c))) ===
      JSON.stringify(f.choices.filter((c) => b.includes(c))) : JSON.stringify(a) === JSON.stringify(b);
    return same ? 'suggested' : 'edited';
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
    } else if (f.type === 'spans' || f.type === 'boxes') {
      this.pick[f.name] = i;
      const sel = window.getSelection();
      const selecting = f.type === 'spans' && sel && !sel.isCollapsed;
      const at = this.sel[f.name];
      // A span or box selected (and no new text selected): relabel it.
      if (!selecting && at >= 0 && at < v[f.name].length) v[f.name][at].label = opts[i];
      else if (f.type === 'spans') this.addSpan(fi);
    }
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
    this.sel[f.name] = -1;
    sel.removeAllRanges();
  }

  // Removes the selected span or box of field fi, else its last one.
  removeLast(fi) {
    const f = this.fields[fi];
    if (f.type === 'spans' || f.type === 'boxes') {
      const a = this.values[f.name], at = this.sel[f.name];
      if (at >= 0 && at < a.length) a.splice(at, 1);
      else a.pop();
      this.sel[f.name] = -1;
    }
    this.render();
  }

  // Selects span or box i of field fi (-1: none), or unselects it when it was.
  select(fi, i) {
    const f = this.fields[fi];
    this.active = fi;
    this.sel[f.name] = this.sel[f.name] === i ? -1 : i;
    if (i >= 0) {
      const at = this.options(f).indexOf(this.values[f.name][i].label);
      if (at >= 0) this.pick[f.name] = at;
    }
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
    if ((ev.key === 'Backspace' || ev.key === 'Delete') && (f.type === 'spans' || f.type === 'boxes')) {
      this.removeLast(this.active);
      return true;
    }
    // A selected span's ends: the arrows move its end, with Shift its start (code points).
    if ((ev.key === 'ArrowLeft' || ev.key === 'ArrowRight') && f.type === 'spans' && this.sel[f.name] >= 0) {
      const s = this.values[f.name][this.sel[f.name]];
      const len = Array.from(typeof this.data[f.over] === 'string' ? this.data[f.over] : '').length;
      const d = ev.key === 'ArrowLeft' ? -1 : 1;
      if (ev.shiftKey) s.start = Math.min(s.end - 1, Math.max(0, s.start + d));
      else s.end = Math.min(len, Math.max(s.start + 1, s.end + d));
      this.render();
      return true;
    }
    if (ev.key === 'Escape' && (f.type === 'spans' || f.type === 'boxes') && this.sel[f.name] >= 0) {
      this.select(this.active, -1);
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
      const mark = this.mark(f);
      if (mark) {
        const tag = el('span', 'sugg-tag ' + mark, mark === 'suggested' ? 'model suggestion' : 'edited');
        tag.dataset.mark = mark;
        head.appendChild(tag);
      }
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
          // The field's mark follows the typing (no render: the focus stays).
          const tag = box.querySelector('.sugg-tag');
          const mark = this.mark(f);
          if (tag && mark && tag.dataset.mark !== mark) {
            tag.className = 'sugg-tag ' + mark;
            tag.dataset.mark = mark;
            tag.textContent = mark === 'suggested' ? 'model suggestion' : 'edited';
          }
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
        const items = this.values[f.name];
        const list = el('div', 'muted items');
        list.dataset.k = 'items';
        if (!items.length) {
          list.textContent = f.type === 'spans' ? 'Select text, then press the number of its label (Backspace removes the last).'
            : 'Pick a label, then drag on the image (Backspace removes the last).';
        }
        items.forEach((s, i) => {
          const it = el('span', 'item' + (this.sel[f.name] === i ? ' sel' : ''), f.type === 'spans'
            ? `${s.label} [${s.start}, ${s.end})`
            : `${s.label} (${s.x.toFixed(1)} %, ${s.y.toFixed(1)} %, ${s.width.toFixed(1)} × ${s.height.toFixed(1)} %)`);
          it.dataset.i = String(i);
          it.title = 'Click to select: a number relabels it, Backspace removes it';
          it.addEventListener('mousedown', (e) => e.preventDefault());
          it.addEventListener('click', () => this.select(fi, i));
          list.appendChild(it);
        });
        if (items.length && this.sel[f.name] >= 0) {
          list.appendChild(el('span', null, f.type === 'spans' ? ' — selected: a number relabels it, \u2190/\u2192 move its end (with Shift its start), Backspace removes it, Esc unselects.'
            : ' — selected: drag it to move, its corner to resize; a number relabels it, Backspace removes it.'));
        }
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
        const chosen = this.values[f.name][this.sel[f.name]];
        seg.className = 'marked' + (marked.includes(chosen) ? ' sel' : '');
        const ends = marked.filter((x) => x.end === b).map((x) => x.label);
        if (ends.length) seg.dataset.ends = ends.join(', ');
        seg.title = marked.map((s) => s.label).join(', ') + ' (click to select)';
        // A click (no text selected) on a span selects it: the innermost one there.
        seg.addEventListener('click', () => {
          const s = window.getSelection();
          if (s && !s.isCollapsed) return;
          const inner = marked.reduce((m, x) => (x.end - x.start < m.end - m.start ? x : m));
          this.select(this.fields.indexOf(f), this.values[f.name].indexOf(inner));
        });
      }
      p.appendChild(seg);
    }
    return p;
  }

  // The image of a boxes field, boxes drawn over it by dragging on the
  // image; a box (drawn, or suggested) is selected by a click, moved by
  // dragging it and resized by dragging its corner handle.
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
    const place = (d, b) => {
      d.style.left = b.x + '%';
      d.style.top = b.y + '%';
      d.style.width = b.width + '%';
      d.style.height = b.height + '%';
    };
    const draw = (b, cls) => {
      const d = el('div', cls);
      place(d, b);
      if (b.label) d.appendChild(el('span', 'box-label', b.label));
      wrap.appendChild(d);
      return d;
    };
    const boxes = this.values[f.name];
    boxes.forEach((b, i) => {
      const d = draw(b, 'box' + (this.sel[f.name] === i ? ' sel' : ''));
      d.dataset.i = String(i);
      d.appendChild(el('span', 'box-handle'));
    });
    const round = (v) => Math.round(v * 100) / 100;
    const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
    // drag: {mode: 'draw' | 'move' | 'size', start: [x, y] in %, i, orig, d}
    let drag = null;
    const pos = (ev) => {
      const r = img.getBoundingClientRect();
      return [clamp(((ev.clientX - r.left) / r.width) * 100, 0, 100), clamp(((ev.clientY - r.top) / r.height) * 100, 0, 100)];
    };
    const rect = (a, b) => ({ x: Math.min(a[0], b[0]), y: Math.min(a[1], b[1]),
      width: Math.abs(a[0] - b[0]), height: Math.abs(a[1] - b[1]) });
    // Where drag d would put its box for pointer position p.
    const shaped = (d, p) => {
      const o = d.orig, dx = p[0] - d.start[0], dy = p[1] - d.start[1];
      if (d.mode === 'move') {
        return { x: round(clamp(o.x + dx, 0, 100 - o.width)), y: round(clamp(o.y + dy, 0, 100 - o.height)),
          width: o.width, height: o.height, label: o.label };
      }
      return { x: o.x, y: o.y, width: round(clamp(o.width + dx, 0.5, 100 - o.x)),
        height: round(clamp(o.height + dy, 0.5, 100 - o.y)), label: o.label };
    };
    wrap.addEventListener('pointerdown', (ev) => {
      ev.preventDefault();
      this.active = fi;
      const hit = ev.target.closest('.box[data-i]');
      const p = pos(ev);
      if (hit) {
        const i = Number(hit.dataset.i);
        this.sel[f.name] = i;
        const at = f.labels.indexOf(boxes[i].label);
        if (at >= 0) this.pick[f.name] = at;
        for (const d of wrap.querySelectorAll('.box[data-i]')) d.classList.toggle('sel', d === hit);
        drag = { mode: ev.target.classList.contains('box-handle') ? 'size' : 'move', start: p, i, orig: { ...boxes[i] }, d: hit, moved: false };
      } else {
        drag = { mode: 'draw', start: p, d: draw({ x: p[0], y: p[1], width: 0, height: 0 }, 'box ghost') };
      }
      wrap.setPointerCapture(ev.pointerId);
    });
    wrap.addEventListener('pointermove', (ev) => {
      if (!drag) return;
      const p = pos(ev);
      // A click without a move only selects (a suggested box stays as suggested).
      if (Math.abs(p[0] - drag.start[0]) + Math.abs(p[1] - drag.start[1]) > 0.3) drag.moved = true;
      if (drag.mode !== 'draw' && !drag.moved) return;
      place(drag.d, drag.mode === 'draw' ? rect(drag.start, p) : shaped(drag, p));
    });
    wrap.addEventListener('pointerup', (ev) => {
      if (!drag) return;
      const d = drag, p = pos(ev);
      drag = null;
      if (d.mode === 'draw') {
        const r = rect(d.start, p);
        if (r.width >= 0.5 && r.height >= 0.5) {
          const b = { x: round(r.x), y: round(r.y), width: round(r.width), height: round(r.height), label: f.labels[this.pick[f.name]] };
          b.width = Math.min(b.width, round(100 - b.x));
          b.height = Math.min(b.height, round(100 - b.y));
          boxes.push(b);
          this.sel[f.name] = -1;
        }
      } else if (d.moved) {
        boxes[d.i] = shaped(d, p);
      }
      this.render();
    });
    return wrap;
  }
}
