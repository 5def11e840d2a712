// Hosts (search, register, edit, assign an image, delete, FOG CSV import) and groups
// (members, deploy a whole room).
import * as api from './api.js';
import {h, clear, field, input, select, on_submit, guarded, flash, render_rows, empty_row,
        table, human_time, human_bytes, confirm_action} from './dom.js';

export const task_kinds = [
  ['deploy', 'Deploy'], ['multicast', 'Multicast deploy'], ['capture', 'Capture'],
  ['wipe_fast', 'Wipe (fast)'], ['wipe_normal', 'Wipe (normal)'], ['wipe_full', 'Wipe (full)'],
  ['disk_test', 'Disk surface test'], ['inventory', 'Hardware inventory'],
  ['wol', 'Wake-on-LAN'], ['debug', 'Debug'],
];
export const kinds_with_image = new Set(['deploy', 'multicast', 'capture']);

export function image_options(images, none = '(none)') {
  return [{value: '', label: none},
          ...[...images.values()].map(i => ({value: i.id, label: i.name}))];
}

const id_or_null = v => (v === '' || v === null || v === undefined ? null : Number(v));

function matches(host, q) {
  if (!q) return true;
  q = q.toLowerCase();
  return [host.name, host.mac, host.description].some(s => (s || '').toLowerCase().includes(q));
}

// ---- hosts -------------------------------------------------------------------------------

export function hosts_view(root) {
  let images = new Map();
  let groups = new Map();
  let hosts = [];

  const search = input('q', {id: 'host-search', type: 'search', placeholder: 'Search name, MAC, description'});
  const {table: t, tbody} = table(['Name', 'MAC', 'Image', 'Groups', 'Last seen', '']);
  tbody.id = 'hosts-body';
  const count = h('span', {class: 'count'});
  const detail = h('section', {class: 'detail', id: 'host-detail'});

  const image_pick = select('image_id', []);
  const reg = h('form', {id: 'host-form', class: 'inline'},
    field('MAC', input('mac', {id: 'host-mac', required: true, placeholder: '00:12:3F:C4:57:0C', size: 17})),
    field('Name', input('name', {id: 'host-name', required: true, size: 16})),
    field('Description', input('description', {size: 20})),
    field('Image', image_pick),
    h('button', {type: 'submit', id: 'host-submit'}, 'Register'));
  on_submit(reg, async data => {
    const body = {mac: data.get('mac').trim(), name: data.get('name').trim(),
                  description: data.get('description')};
    const img = id_or_null(data.get('image_id'));
    if (img !== null) body.image_id = img;
    await api.create('hosts', body);
    reg.reset();
    flash(`registered ${body.name}`, 'ok');
    await load();
  });

  const csv_file = input('file', {type: 'file', accept: '.csv,text/csv', id: 'csv-file'});
  const csv_result = h('div', {class: 'csv-result', id: 'csv-result'});
  const csv = h('form', {id: 'csv-form', class: 'inline'},
    field('FOG host export (CSV)', csv_file), h('button', {type: 'submit'}, 'Import'), csv_result);
  on_submit(csv, async () => {
    clear(csv_result);
    const f = csv_file.files[0];
    if (!f) throw new api.api_error(400, {error: 'choose a CSV file first', field: 'file'});
    try {
      const r = await api.call('POST', '/hosts/import', await f.text(), {content_type: 'text/csv'});
      const n = r && (r.imported ?? r.count ?? api.rows_of(r).length);
      clear(csv_result, h('p', {class: 'ok'}, `imported ${n ?? ''} hosts from ${f.name}`));
      csv.reset();
      await load();
    } catch (e) {
      const lines = api.rows_of(e.body && (e.body.lines || e.body.errors || e.body.details));
      if (!lines.length) throw e;
      // All or nothing: the server imported none of the file; list every bad line.
      clear(csv_result, h('p', {class: 'error'},
            /nothing/.test(e.message) ? e.message : `${e.message}: nothing was imported`),
            h('ul', {class: 'errors', id: 'csv-errors'}, lines.map(l =>
              h('li', {}, `line ${l.line ?? l.line_number ?? '?'}: `,
                l.field ? `${l.field}: ` : '', l.error ?? l.message ?? JSON.stringify(l)))));
    }
  });

  function make_row(host) {
    const tr = h('tr', {});
    fill_row(tr, host);
    return tr;
  }

  function fill_row(tr, host) {
    const img = select('image_id', image_options(images), {value: host.image_id ?? '',
                       title: 'assign an image', class: 'compact'});
    img.addEventListener('change', () => guarded(async () => {
      await api.update('hosts', host.id, {image_id: id_or_null(img.value)});
      flash(`${host.name}: image ${images.get(id_or_null(img.value))?.name ?? 'none'}`, 'ok');
      await load();
    }));
    const group_names = (host.groups || []).map(g => groups.get(g)?.name ?? `#${g}`).join(', ');
    clear(tr,
      h('td', {class: 'name'}, host.name, host.pending ? h('span', {class: 'badge'}, 'pending') : null,
        host.description ? h('div', {class: 'sub'}, host.description) : null),
      h('td', {class: 'mono'}, host.mac),
      h('td', {}, img),
      h('td', {}, group_names),
      h('td', {}, human_time(host.last_seen_at)),
      h('td', {class: 'actions'},
        host.pending ? h('button', {type: 'button', onclick: () => guarded(async () => {
          await api.update('hosts', host.id, {pending: false}); await load();
        })}, 'Approve') : null,
        h('button', {type: 'button', onclick: () => show_detail(host)}, 'Info'),
        h('button', {type: 'button', onclick: () => edit(tr, host)}, 'Edit'),
        h('button', {type: 'button', class: 'danger', onclick: () => guarded(async () => {
          if (!confirm_action(`Delete host ${host.name} (${host.mac})?`)) return;
          await api.remove('hosts', host.id);
          await load();
        })}, 'Delete')));
  }

  // The inventory the PC reported (docs/control.md: cpu, memory_bytes, disks[], nics[],
  // dmi{}), and what can be done to the host from here.
  function show_detail(host) {
    let inv = host.inventory || {};
    if (typeof inv === 'string') { try { inv = JSON.parse(inv); } catch { inv = {}; } }
    const disks = Array.isArray(inv.disks) ? inv.disks : [];
    const nics = Array.isArray(inv.nics) ? inv.nics : [];
    const dmi = inv.dmi && typeof inv.dmi === 'object' ? inv.dmi : {};
    const item = (k, v) => (v === undefined || v === null || v === '' ? null : [h('dt', {}, k), h('dd', {}, String(v))]);
    const describe = x => (typeof x === 'object' && x !== null
      ? Object.entries(x).map(([k, v]) => `${k}=${k.endsWith('bytes') ? human_bytes(v) : v}`).join(' ')
      : String(x));
    clear(detail,
      h('h3', {}, `${host.name} `, h('span', {class: 'sub mono'}, host.mac)),
      h('dl', {class: 'inventory'},
        item('Description', host.description),
        item('CPU', typeof inv.cpu === 'object' ? describe(inv.cpu) : inv.cpu),
        item('Memory', inv.memory_bytes ? human_bytes(inv.memory_bytes) : null),
        disks.map((x, i) => item(`Disk ${i}`, describe(x))),
        nics.map((x, i) => item(`NIC ${i}`, describe(x))),
        Object.keys(dmi).length ? item('DMI', describe(dmi)) : null,
        item('Last seen', human_time(host.last_seen_at)),
        item('Registered', human_time(host.created_at))),
      Object.keys(inv).length ? null : h('p', {class: 'sub'}, 'No inventory yet: it arrives when the PC boots shoal\'s client OS (an "inventory" task).'),
      h('div', {class: 'inline'},
        h('button', {type: 'button', onclick: () => guarded(async () => {
          await api.call('POST', `/hosts/${host.id}/wake`);
          flash(`sent Wake-on-LAN to ${host.name}`, 'ok');
        })}, 'Wake on LAN'), ' ',
        h('a', {href: `#/tasks/host/${host.id}`}, 'Start a task…'), ' ',
        h('button', {type: 'button', class: 'link', onclick: () => clear(detail)}, 'close')));
    detail.scrollIntoView({block: 'nearest'});
  }

  function edit(tr, host) {
    const form = h('form', {class: 'inline edit'},
      field('MAC', input('mac', {value: host.mac, size: 17})),
      field('Name', input('name', {value: host.name, required: true, size: 16})),
      field('Description', input('description', {value: host.description || '', size: 24})),
      field('Image', select('image_id', image_options(images), {value: host.image_id ?? ''})),
      h('button', {type: 'submit'}, 'Save'),
      h('button', {type: 'button', onclick: () => fill_row(tr, host)}, 'Cancel'));
    on_submit(form, async data => {
      const body = {};
      for (const k of ['mac', 'name', 'description']) {
        if (data.get(k) !== (host[k] || '')) body[k] = data.get(k);
      }
      const img = id_or_null(data.get('image_id'));
      if (img !== (host.image_id ?? null)) body.image_id = img;
      if (Object.keys(body).length) await api.update('hosts', host.id, body);
      await load(true);
    });
    clear(tr, h('td', {colspan: 6}, form));
    form.querySelector('input[name=name]').focus();
  }

  function render(rebuild) {
    const shown = hosts.filter(x => matches(x, search.value.trim()));
    if (rebuild) clear(tbody);
    render_rows(tbody, shown, make_row, (tr, host) => {
      if (!tr.querySelector('form')) fill_row(tr, host);
    });
    empty_row(tbody, 6, hosts.length ? 'no host matches' : 'no hosts yet: register one above or import FOG\'s CSV');
    count.textContent = `${shown.length} of ${hosts.length}`;
  }
  search.addEventListener('input', () => render(false));

  async function load(rebuild = false) {
    [images, groups, hosts] = await Promise.all([
      api.by_id('images'), api.by_id('groups'), api.list('hosts')]);
    const keep = image_pick.value;
    clear(image_pick, ...image_options(images).map(o => h('option', {value: o.value}, o.label)));
    image_pick.value = keep;
    render(rebuild);
  }

  clear(root,
    h('h2', {}, 'Hosts'),
    h('section', {class: 'bar'}, reg),
    h('section', {class: 'bar'}, csv),
    h('div', {class: 'search'}, search, count),
    detail,
    t);
  return {load};
}

// ---- groups ------------------------------------------------------------------------------

export function groups_view(root) {
  let hosts = new Map();
  let images = new Map();
  let groups = [];
  let selected = null;

  const {table: t, tbody} = table(['Group', 'Description', 'Members', '']);
  const detail = h('section', {class: 'detail', id: 'group-detail'});

  const form = h('form', {id: 'group-form', class: 'inline'},
    field('Name', input('name', {required: true, size: 16})),
    field('Description', input('description', {size: 28})),
    h('button', {type: 'submit'}, 'Create group'));
  on_submit(form, async data => {
    const g = await api.create('groups', {name: data.get('name').trim(),
                                          description: data.get('description')});
    form.reset();
    selected = g && g.id;
    await load();
  });

  function row(g) {
    return h('tr', {class: g.id === selected ? 'selected' : ''},
      h('td', {class: 'name'}, h('a', {href: '#/groups', onclick: ev => {
        ev.preventDefault(); selected = g.id; render();
      }}, g.name)),
      h('td', {}, g.description || ''),
      h('td', {}, String((g.hosts || []).length)),
      h('td', {class: 'actions'}, h('button', {type: 'button', class: 'danger', onclick: () => guarded(async () => {
        if (!confirm_action(`Delete group ${g.name}? Its hosts stay.`)) return;
        await api.remove('groups', g.id);
        if (selected === g.id) selected = null;
        await load();
      })}, 'Delete')));
  }

  async function set_members(g, ids) {
    await guarded(async () => {
      await api.update('groups', g.id, {hosts: ids});
      await load();
    });
  }

  function render_detail() {
    const g = groups.find(x => x.id === selected);
    if (!g) { clear(detail); return; }
    const members = g.hosts || [];
    const others = [...hosts.values()].filter(x => !members.includes(x.id));
    const add = select('host_id', others.map(x => ({value: x.id, label: `${x.name} (${x.mac})`})));
    const deploy = h('form', {class: 'inline', id: 'group-deploy'},
      field('Task', select('kind', task_kinds.map(([value, label]) => ({value, label})),
                           {value: 'multicast'})),
      field('Image', select('image_id', image_options(images, '(choose)'))),
      h('button', {type: 'submit'}, `Start for ${members.length} hosts`));
    on_submit(deploy, async data => {
      const body = {kind: data.get('kind')};
      const img = id_or_null(data.get('image_id'));
      if (img !== null) body.image_id = img;
      const r = await api.call('POST', `/groups/${g.id}/tasks`, body);
      flash(`started ${api.rows_of(r).length || members.length} tasks for ${g.name}`, 'ok');
      location.hash = '#/tasks';
    });
    clear(detail,
      h('h3', {}, `Group ${g.name}`),
      h('ul', {class: 'members'}, members.length ? members.map(id => {
        const x = hosts.get(id);
        return h('li', {}, x ? `${x.name} (${x.mac})` : `host #${id}`, ' ',
          h('button', {type: 'button', class: 'link', onclick: () =>
            set_members(g, members.filter(m => m !== id))}, 'remove'));
      }) : h('li', {class: 'sub'}, 'no members yet')),
      others.length ? h('div', {class: 'inline'}, add, h('button', {type: 'button', onclick: () =>
        set_members(g, [...members, Number(add.value)])}, 'Add host')) : null,
      h('h4', {}, 'Start a task for every member'), deploy);
  }

  function render() {
    clear(tbody, groups.map(g => { const r = row(g); r.dataset.id = g.id; return r; }));
    empty_row(tbody, 4, 'no groups yet');
    render_detail();
  }

  async function load() {
    [hosts, images, groups] = await Promise.all([
      api.by_id('hosts'), api.by_id('images'), api.list('groups')]);
    if (selected === null && groups.length) selected = groups[0].id;
    render();
  }

  clear(root, h('h2', {}, 'Groups'), h('section', {class: 'bar'}, form), t, detail);
  return {load};
}
