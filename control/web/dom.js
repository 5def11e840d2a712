// Small DOM helpers. Everything a PC or a person typed (host names, descriptions,
// inventory, error messages) goes into the page as text, never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    // Attributes as well as properties, so that form.reset() comes back to them.
    else if (k === 'value') { el.setAttribute('value', v); el.value = v; }
    else if (k === 'checked') { el.defaultChecked = !!v; el.checked = !!v; }
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// ---- formatting --------------------------------------------------------------------------

export function human_bytes(n) {
  if (n === undefined || n === null || isNaN(n)) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function human_rate(bytes_per_s) {
  if (!bytes_per_s) return '';
  return `${human_bytes(bytes_per_s)}/s`;
}

export function human_time(t) {
  if (!t) return '';
  const d = typeof t === 'number' ? new Date(t * 1000) : new Date(t);
  if (isNaN(d)) return String(t);
  return d.toLocaleString(undefined, {dateStyle: 'short', timeStyle: 'medium'});
}

// A progress bar whose value a poll can change in place (see set_progress).
export function progress_bar(p) {
  const fill = h('div', {class: 'fill'});
  const label = h('span', {class: 'label'});
  const bar = h('div', {class: 'progress', role: 'progressbar', 'aria-valuemin': 0,
                        'aria-valuemax': 100}, fill, label);
  set_progress(bar, p);
  return bar;
}

export function set_progress(bar, p) {
  const pct = Math.max(0, Math.min(100, Number((p && p.percent) || 0)));
  bar.setAttribute('aria-valuenow', String(Math.round(pct)));
  bar.querySelector('.fill').style.width = `${pct}%`;
  bar.querySelector('.label').textContent = `${pct.toFixed(pct < 10 && pct > 0 ? 1 : 0)}%`;
}

// ---- forms and errors --------------------------------------------------------------------

// A labelled input. `name` is the API's field name, so an error naming it lands here.
// `api_field` when the API names the field otherwise (a schedule's task kind: task.kind).
export function field(label, input, hint, api_field) {
  return h('label', {class: 'field', dataset: {field: api_field || input.name || ''}},
           h('span', {class: 'name'}, label), input,
           hint ? h('small', {class: 'hint'}, hint) : null,
           h('span', {class: 'error', 'aria-live': 'polite'}));
}

export function input(name, attrs = {}) {
  return h('input', {name, id: attrs.id, ...attrs});
}

export function select(name, options, attrs = {}) {
  const s = h('select', {name, ...attrs});
  for (const o of options) {
    const opt = h('option', {value: o.value}, o.label);
    if (attrs.value !== undefined && String(attrs.value) === String(o.value)) {
      opt.defaultSelected = true;
      opt.selected = true;
    }
    s.append(opt);
  }
  if (attrs.value !== undefined) s.value = attrs.value === null ? '' : String(attrs.value);
  return s;
}

export function clear_errors(form) {
  form.querySelectorAll('.error').forEach(e => { e.textContent = ''; });
  form.querySelectorAll('.invalid').forEach(e => e.classList.remove('invalid'));
}

// Shows an API error next to the field it names, or at the form's foot when it names none
// (or a field this form does not have).
export function show_error(form, err) {
  clear_errors(form);
  const msg = err && err.message ? err.message : String(err);
  let slot = null;
  if (err && err.field) {
    const f = form.querySelector(`[data-field="${CSS.escape(err.field)}"]`);
    if (f) {
      slot = f.querySelector('.error');
      f.querySelector('input,select,textarea')?.classList.add('invalid');
    }
  }
  if (!slot) slot = form.querySelector(':scope > .error, .form-error');
  if (!slot) {
    slot = h('p', {class: 'error form-error', role: 'alert'});
    form.append(slot);
  }
  slot.textContent = err && err.field && !slot.closest('[data-field]')
    ? `${err.field}: ${msg}` : msg;
}

// Runs an async action for a form's submit: errors land in the form, the button is
// disabled meanwhile so a double click does not create two hosts.
export function on_submit(form, action) {
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const btn = form.querySelector('button[type=submit]');
    if (btn) btn.disabled = true;
    clear_errors(form);
    try {
      await action(new FormData(form));
    } catch (e) {
      show_error(form, e);
    } finally {
      if (btn) btn.disabled = false;
    }
  });
  return form;
}

// A status line at the top of a view for errors that belong to no form (a failed delete).
export function flash(msg, kind = 'error') {
  const el = document.getElementById('flash');
  if (!el) return;
  el.className = `flash ${kind}`;
  el.textContent = msg;
  el.hidden = !msg;
  clearTimeout(flash.timer);
  if (msg) flash.timer = setTimeout(() => { el.hidden = true; }, 8000);
}

export async function guarded(fn) {
  try {
    return await fn();
  } catch (e) {
    flash(e.message || String(e));
    return undefined;
  }
}

// Rows keyed by id, updated in place: a poll changes the numbers of the rows it knows,
// adds new ones and drops gone ones, so a button under the pointer is not replaced under it.
export function render_rows(tbody, rows, make, refresh) {
  const seen = new Set();
  let prev = null;
  for (const row of rows) {
    const key = String(row.id);
    seen.add(key);
    let tr = tbody.querySelector(`:scope > [data-id="${CSS.escape(key)}"]`);
    if (!tr) {
      tr = make(row);
      tr.dataset.id = key;
    } else if (refresh) {
      refresh(tr, row);
    }
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== tr) tbody.insertBefore(tr, want);
    prev = tr;
  }
  for (const tr of [...tbody.children]) {
    if (tr.dataset.id !== undefined && !seen.has(tr.dataset.id)) tr.remove();
  }
}

export function empty_row(tbody, columns, text) {
  if (!tbody.querySelector('tr[data-id]')) {
    if (!tbody.querySelector('tr.empty')) {
      tbody.append(h('tr', {class: 'empty'}, h('td', {colspan: columns}, text)));
    }
  } else {
    tbody.querySelector('tr.empty')?.remove();
  }
}

export function table(headers, tbody_attrs = {}) {
  const tbody = h('tbody', tbody_attrs);
  const t = h('table', {}, h('thead', {}, h('tr', {}, headers.map(x => h('th', {}, x)))), tbody);
  return {table: t, tbody};
}

export function confirm_action(text) {
  return window.confirm(text);
}
