// Tasks (create for a host or a group, live progress, cancel, history), multicast sessions
// (receivers with their rate and progress) and schedules (one-shot and cron).
import * as api from './api.js';
import {h, clear, field, input, select, on_submit, guarded, flash, render_rows, empty_row,
        table, human_time, human_bytes, human_rate, progress_bar, set_progress,
        confirm_action} from './dom.js';
import {task_kinds, kinds_with_image, image_options} from './hosts.js';

const finished = new Set(['complete', 'failed', 'cancelled']);
const kind_label = new Map(task_kinds);
const poll_interval_ms = 1000;
const history_rows = 200;   // finished tasks shown; the API has them all
const history_every = 10;   // polls between two looks at the history

// Calls fn about once a second while the view is shown, never two at once, and not while
// the tab is hidden (a laptop left on the console page should not load the server).
function poller(fn) {
  let stopped = false;
  let timer = null;
  async function tick() {
    if (stopped) return;
    if (!document.hidden) {
      try { await fn(); } catch (e) { if (e.status === 401) { stopped = true; return; } flash(e.message); }
    }
    if (!stopped) timer = setTimeout(tick, poll_interval_ms);
  }
  return {
    start() { timer = setTimeout(tick, poll_interval_ms); },
    stop() { stopped = true; clearTimeout(timer); },
  };
}

function state_badge(state) {
  return h('span', {class: `state ${state || ''}`}, (state || '?').replace('_', ' '));
}

function progress_text(p) {
  if (!p) return '';
  const parts = [];
  if (p.bytes_total) parts.push(`${human_bytes(p.bytes_done || 0)} of ${human_bytes(p.bytes_total)}`);
  else if (p.bytes_done) parts.push(human_bytes(p.bytes_done));
  if (p.rate_Bps) parts.push(human_rate(p.rate_Bps));
  return parts.join(' · ');
}

// What the PC does at the end of its task; FOG's default is a reboot.
const shutdown_select = () => select('shutdown', [
  {value: 'reboot', label: 'reboot'}, {value: 'poweroff', label: 'power off'},
  {value: 'none', label: 'stay on'}], {value: 'reboot'});

const id_or_null = v => (v === '' || v === null || v === undefined ? null : Number(v));

// ---- tasks -------------------------------------------------------------------------------

export function tasks_view(root) {
  let hosts = new Map();
  let images = new Map();
  let groups = new Map();
  const kind = select('kind', task_kinds.map(([value, label]) => ({value, label})),
                      {value: 'deploy', id: 'task-kind'});
  const target = select('target', [], {id: 'task-target', required: true});
  const image = select('image_id', [], {id: 'task-image'});
  const image_field = field('Image', image, 'empty: the host\'s assigned image');
  const form = h('form', {id: 'task-form', class: 'inline'},
    field('Task', kind),
    h('label', {class: 'field', dataset: {field: 'host_id'}}, h('span', {class: 'name'}, 'For'),
      target, h('span', {class: 'error'})),
    image_field,
    field('Then', shutdown_select()),
    h('label', {class: 'check'}, input('wol', {type: 'checkbox', checked: true}), ' wake on LAN'),
    h('button', {type: 'submit', id: 'task-submit'}, 'Start task'));
  const sync_image = () => { image_field.hidden = !kinds_with_image.has(kind.value); };
  kind.addEventListener('change', sync_image);
  sync_image();

  on_submit(form, async data => {
    const body = {kind: data.get('kind'), wol: data.get('wol') === 'on'};
    const img = id_or_null(data.get('image_id'));
    if (kinds_with_image.has(body.kind) && img !== null) body.image_id = img;
    body.shutdown = data.get('shutdown');
    const [what, id] = String(data.get('target')).split(':');
    if (!id) throw new api.api_error(400, {error: 'choose a host or a group', field: 'host_id'});
    // "(host's image)": the API wants the image named, so the console names the host's.
    if (what === 'host' && kinds_with_image.has(body.kind) && body.image_id === undefined) {
      const assigned = hosts.get(Number(id))?.image_id;
      if (assigned) body.image_id = assigned;
    }
    if (what === 'group') {
      await api.call('POST', `/groups/${id}/tasks`, body);
    } else {
      await api.create('tasks', {...body, host_id: Number(id)});
    }
    flash(`started ${kind_label.get(body.kind) || body.kind}`, 'ok');
    await refresh();
  });

  const open = table(['#', 'Host', 'Task', 'Image', 'State', 'Progress', '', 'Started', '']);
  open.tbody.id = 'tasks-body';
  const done = table(['#', 'Host', 'Task', 'Image', 'State', 'Message', 'Finished', '']);
  done.tbody.id = 'history-body';
  const events = h('section', {class: 'detail', id: 'task-events'});

  const host_name = t => hosts.get(t.host_id)?.name ?? (t.host_id ? `#${t.host_id}` : '');
  const image_name = t => images.get(t.image_id)?.name ?? (t.image_id ? `#${t.image_id}` : '');

  function open_row(t) {
    const bar = progress_bar(t.progress);
    const tr = h('tr', {},
      h('td', {}, String(t.id)),
      h('td', {class: 'name'}, host_name(t)),
      h('td', {}, kind_label.get(t.kind) || t.kind),
      h('td', {}, image_name(t)),
      h('td', {class: 'state-cell'}, state_badge(t.state)),
      h('td', {class: 'bar-cell'}, bar),
      h('td', {class: 'figures'}),
      h('td', {}, human_time(t.started_at || t.created_at)),
      h('td', {class: 'actions'},
        h('button', {type: 'button', onclick: () => show_events(t)}, 'History'),
        h('button', {type: 'button', class: 'danger cancel', onclick: () => guarded(async () => {
          if (!confirm_action(`Cancel ${t.kind} on ${host_name(t)}?`)) return;
          await api.call('POST', `/tasks/${t.id}/cancel`);
          await refresh();
        })}, 'Cancel')));
    update_open(tr, t);
    return tr;
  }

  function update_open(tr, t) {
    clear(tr.querySelector('.state-cell'), state_badge(t.state));
    set_progress(tr.querySelector('.progress'), t.progress);
    const fig = tr.querySelector('.figures');
    clear(fig, progress_text(t.progress),
          t.progress && t.progress.message ? h('div', {class: 'sub'}, t.progress.message) : null);
  }

  function done_row(t) {
    return h('tr', {},
      h('td', {}, String(t.id)),
      h('td', {class: 'name'}, host_name(t)),
      h('td', {}, kind_label.get(t.kind) || t.kind),
      h('td', {}, image_name(t)),
      h('td', {}, state_badge(t.state)),
      h('td', {}, (t.progress && t.progress.message) || ''),
      h('td', {}, human_time(t.finished_at || t.updated_at)),
      h('td', {class: 'actions'}, h('button', {type: 'button', onclick: () => show_events(t)}, 'History')));
  }

  async function show_events(t) {
    await guarded(async () => {
      const ev = api.rows_of(await api.call('GET', `/tasks/${t.id}/events`));
      clear(events, h('h3', {}, `Task ${t.id}: ${kind_label.get(t.kind) || t.kind} on ${host_name(t)}`),
        h('ol', {class: 'events'}, ev.map(e =>
          h('li', {}, h('span', {class: 'sub'}, human_time(e.at || e.time || e.created_at)), ' ',
            e.from ? `${e.from} → ` : '', state_badge(e.to || e.state), ' ', e.message || ''))),
        h('button', {type: 'button', class: 'link', onclick: () => clear(events)}, 'close'));
      events.scrollIntoView({block: 'nearest'});
    });
  }

  function render() {
    render_rows(open.tbody, open_tasks, open_row, update_open);
    empty_row(open.tbody, 9, 'no task is running');
    render_rows(done.tbody, done_tasks, done_row, null);
    empty_row(done.tbody, 8, 'no finished tasks yet');
  }

  // Each second only the open tasks are asked for (?open=true); the history (the newest
  // history_rows tasks, the API lists by id) when a task has left the open list, and
  // every history_every ticks in case another console or a schedule made and ended one.
  let open_tasks = [];
  let done_tasks = [];
  let ticks = 0;
  async function refresh_history() {
    const total = (await api.call('GET', '/tasks?limit=1')).total || 0;
    const q = new URLSearchParams({limit: String(history_rows),
                                   offset: String(Math.max(0, total - history_rows))});
    done_tasks = api.rows_of(await api.call('GET', `/tasks?${q}`))
      .filter(t => finished.has(t.state)).reverse();
  }

  async function refresh() {
    const before = new Set(open_tasks.map(t => t.id));
    open_tasks = await api.list('tasks', {open: 'true'});
    const now = new Set(open_tasks.map(t => t.id));
    const left = [...before].some(id => !now.has(id));
    if (left || ticks++ % history_every === 0) await refresh_history();
    // A task for a host registered since the view was opened: learn its name.
    if ([...open_tasks, ...done_tasks].some(t => t.host_id && !hosts.has(t.host_id))) {
      hosts = await api.by_id('hosts');
    }
    render();
  }

  async function load() {
    [hosts, images, groups] = await Promise.all([
      api.by_id('hosts'), api.by_id('images'), api.by_id('groups')]);
    clear(target,
      h('option', {value: ''}, '(choose)'),
      h('optgroup', {label: 'Host'}, [...hosts.values()].map(x =>
        h('option', {value: `host:${x.id}`}, `${x.name} (${x.mac})`))),
      groups.size ? h('optgroup', {label: 'Group'}, [...groups.values()].map(g =>
        h('option', {value: `group:${g.id}`}, `${g.name} (${(g.hosts || []).length} hosts)`))) : null);
    clear(image, ...image_options(images, '(host\'s image)').map(o => h('option', {value: o.value}, o.label)));
    // #/tasks/host/<id> or #/tasks/group/<id>: the host page's "Start a task" link.
    const pre = location.hash.match(/^#\/tasks\/(host|group)\/(\d+)/);
    if (pre) target.value = `${pre[1]}:${pre[2]}`;
    await refresh();
    poll.start();
  }

  const poll = poller(refresh);
  clear(root,
    h('h2', {}, 'Tasks'),
    h('section', {class: 'bar'}, form),
    h('h3', {}, 'Running and queued'), open.table,
    events,
    h('h3', {}, 'History'), done.table);
  return {load, stop: () => poll.stop()};
}

// ---- multicast sessions ------------------------------------------------------------------

export function sessions_view(root) {
  let hosts = new Map();
  let images = new Map();
  const list_el = h('div', {id: 'sessions'});
  const done_receivers = new Map();
  const live_receivers = new Map();

  function receiver_row(task) {
    const tr = h('tr', {},
      h('td', {class: 'name'}, hosts.get(task.host_id)?.name ?? `#${task.host_id}`),
      h('td', {class: 'state-cell'}),
      h('td', {class: 'bar-cell'}, progress_bar(task.progress)),
      h('td', {class: 'rate'}),
      h('td', {class: 'written'}),
      h('td', {class: 'message'}));
    update_receiver(tr, task);
    return tr;
  }

  function update_receiver(tr, task) {
    const p = task.progress || {};
    clear(tr.querySelector('.state-cell'), state_badge(task.state));
    set_progress(tr.querySelector('.progress'), p);
    tr.querySelector('.rate').textContent = human_rate(p.rate_Bps);
    tr.querySelector('.written').textContent = progress_text({...p, rate_Bps: 0});
    tr.querySelector('.message').textContent = p.message || '';
  }

  function session_card(s) {
    const {table: t, tbody} = table(['Host', 'State', 'Progress', 'Rate', 'Written', 'Message']);
    return h('article', {class: 'session card'}, h('header', {}), t);
  }

  // The card's figures change in place each second, so the bars move smoothly and a
  // pointer on "Cancel all" is not pulled from under it.
  function update_card(card, s, tasks) {
    const mine = tasks.filter(t => t.session_id === s.id || (s.tasks || []).includes(t.id));
    const rate = mine.reduce((a, t) => a + (Number(t.progress?.rate_Bps) || 0), 0);
    const joined = mine.filter(t => t.state !== 'queued').length;
    const open = !finished.has(s.state);
    clear(card.querySelector('header'),
      h('strong', {}, `Session ${s.id}: ${images.get(s.image_id)?.name ?? `image #${s.image_id}`}`), ' ',
      state_badge(s.state), ' ',
      h('span', {class: 'sub'}, [
        s.group ? `${s.group}:${s.port ?? ''}` : '',
        `${joined} of ${mine.length} receivers joined`,
        s.receivers_min ? `starts at ${s.receivers_min}` : '',
        s.wait_max_s ? `or after ${Math.round(s.wait_max_s / 60)} min` : '',
        rate ? `sum ${human_rate(rate)}` : '',
        s.rate_bps ? `cap ${human_rate(s.rate_bps / 8)}` : '',
        s.started_at ? `started ${human_time(s.started_at)}` : '',
        s.finished_at ? `finished ${human_time(s.finished_at)}` : '',
      ].filter(Boolean).join(' · ')),
      open ? h('button', {type: 'button', class: 'danger', onclick: () => guarded(async () => {
        if (!confirm_action(`Cancel session ${s.id} and its ${mine.length} tasks?`)) return;
        await Promise.all(mine.filter(t => !finished.has(t.state)).map(t =>
          api.call('POST', `/tasks/${t.id}/cancel`)));
        await refresh();
      })}, 'Cancel all') : null);
    const tbody = card.querySelector('tbody');
    render_rows(tbody, mine, receiver_row, update_receiver);
    empty_row(tbody, 6, 'no receiver has joined yet');
  }

  async function refresh() {
    const sessions = await api.list('sessions');
    // A session's receivers are its tasks: asked for each second while it runs, once
    // when it has ended (they change no more).
    await Promise.all(sessions.map(async x => {
      if (finished.has(x.state) && done_receivers.has(x.id)) return;
      const rows = await api.list('tasks', {session_id: String(x.id)});
      if (finished.has(x.state)) done_receivers.set(x.id, rows);
      else live_receivers.set(x.id, rows);
    }));
    const tasks = sessions.flatMap(x => done_receivers.get(x.id) || live_receivers.get(x.id) || []);
    if (tasks.some(t => !hosts.has(t.host_id))) hosts = await api.by_id('hosts');
    const sorted = sessions.sort((a, b) =>
      Number(finished.has(a.state)) - Number(finished.has(b.state)) || b.id - a.id);
    const by_session = new Map(sorted.map(x => [x.id, x]));
    list_el.querySelector(':scope > p.sub')?.remove();
    render_rows(list_el, sorted, session_card, null);
    for (const card of list_el.querySelectorAll(':scope > article')) {
      update_card(card, by_session.get(Number(card.dataset.id)), tasks);
    }
    if (!sorted.length) {
      list_el.append(h('p', {class: 'sub'}, 'No multicast session yet. Start a "Multicast deploy" ' +
        'task for hosts or a group: tasks for the same image that start together share one session.'));
    }
  }

  async function load() {
    [hosts, images] = await Promise.all([api.by_id('hosts'), api.by_id('images')]);
    await refresh();
    poll.start();
  }

  const poll = poller(refresh);
  clear(root, h('h2', {}, 'Multicast sessions'), list_el);
  return {load, stop: () => poll.stop()};
}

// ---- schedules ---------------------------------------------------------------------------

// <input type=datetime-local> gives local time without a zone; the API wants RFC 3339 UTC.
function local_to_utc(v) {
  if (!v) return '';
  const d = new Date(v);
  return isNaN(d) ? v : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function schedules_view(root) {
  let hosts = new Map();
  let images = new Map();
  let groups = new Map();
  let schedules = [];

  const {table: t, tbody} = table(['Name', 'When', 'Task', 'For', 'Next run', 'Last run', 'Enabled', '']);
  const kind = select('kind', [{value: 'once', label: 'once'}, {value: 'cron', label: 'repeating (cron)'}]);
  const at = field('At', input('at', {type: 'datetime-local'}));
  const cron = field('Cron', input('cron', {placeholder: '0 19 * * 1-5', size: 14}),
                     'minute hour day month weekday');
  const task_kind = select('task_kind', task_kinds.map(([value, label]) => ({value, label})), {value: 'deploy'});
  const hosts_pick = select('hosts', [], {multiple: true, size: 4});
  const groups_pick = select('groups', [], {multiple: true, size: 4});
  const image_pick = select('image_id', []);
  const form = h('form', {id: 'schedule-form', class: 'inline'},
    field('Name', input('name', {required: true, size: 14})),
    field('Runs', kind), at, cron,
    field('Task', task_kind, null, 'task.kind'),
    field('Image', image_pick, null, 'task.image_id'),
    field('Hosts', hosts_pick), field('Groups', groups_pick),
    field('Then', shutdown_select()),
    h('label', {class: 'check'}, input('wol', {type: 'checkbox', checked: true}), ' wake on LAN'),
    h('button', {type: 'submit'}, 'Add schedule'));
  const sync = () => { at.hidden = kind.value !== 'once'; cron.hidden = kind.value !== 'cron'; };
  kind.addEventListener('change', sync);
  sync();

  on_submit(form, async data => {
    const task = {kind: data.get('task_kind'), wol: data.get('wol') === 'on'};
    const img = id_or_null(data.get('image_id'));
    if (img !== null) task.image_id = img;
    task.shutdown = data.get('shutdown');
    const body = {name: data.get('name').trim(), kind: data.get('kind'), task, enabled: true,
                  hosts: data.getAll('hosts').map(Number), groups: data.getAll('groups').map(Number)};
    if (body.kind === 'once') body.at = local_to_utc(data.get('at'));
    else body.cron = data.get('cron').trim();
    await api.create('schedules', body);
    form.reset();
    sync();
    await load();
  });

  function row(s) {
    const targets = [...(s.hosts || []).map(id => hosts.get(id)?.name ?? `#${id}`),
                     ...(s.groups || []).map(id => `group ${groups.get(id)?.name ?? `#${id}`}`)];
    const task = s.task || {};
    const enabled = input('enabled', {type: 'checkbox', checked: s.enabled});
    enabled.addEventListener('change', () => guarded(async () => {
      await api.update('schedules', s.id, {enabled: enabled.checked});
      await load();
    }));
    return h('tr', {dataset: {id: s.id}},
      h('td', {class: 'name'}, s.name),
      h('td', {class: 'mono'}, s.kind === 'cron' ? s.cron : human_time(s.at)),
      h('td', {}, kind_label.get(task.kind) || task.kind || '',
        task.image_id ? ` · ${images.get(task.image_id)?.name ?? `#${task.image_id}`}` : ''),
      h('td', {}, targets.join(', ')),
      h('td', {}, human_time(s.next_run_at)),
      h('td', {}, human_time(s.last_run_at)),
      h('td', {}, enabled),
      h('td', {class: 'actions'}, h('button', {type: 'button', class: 'danger', onclick: () => guarded(async () => {
        if (!confirm_action(`Delete schedule ${s.name}?`)) return;
        await api.remove('schedules', s.id);
        await load();
      })}, 'Delete')));
  }

  async function load() {
    [hosts, images, groups, schedules] = await Promise.all([
      api.by_id('hosts'), api.by_id('images'), api.by_id('groups'), api.list('schedules')]);
    clear(hosts_pick, [...hosts.values()].map(x => h('option', {value: x.id}, x.name)));
    clear(groups_pick, [...groups.values()].map(g => h('option', {value: g.id}, g.name)));
    clear(image_pick, ...image_options(images, '(choose)').map(o => h('option', {value: o.value}, o.label)));
    clear(tbody, schedules.map(row));
    empty_row(tbody, 8, 'no schedules yet');
  }

  clear(root, h('h2', {}, 'Schedules'), h('section', {class: 'bar'}, form), t);
  return {load};
}
