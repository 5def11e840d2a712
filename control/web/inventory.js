// Images (what can be deployed) and storage: the nodes that hold image chunks and the
// groups they belong to.
import * as api from './api.js';
import {h, clear, field, input, select, on_submit, guarded, empty_row, table, human_bytes,
        human_time, confirm_action} from './dom.js';

export const image_kinds = [
  ['single_disk_resizable', 'Single disk, resizable'],
  ['multi_partition_single_disk', 'Multiple partitions, single disk'],
  ['multi_partition_all_disks', 'Multiple partitions, all disks'],
  ['raw', 'Raw (every sector)'],
];
const image_kind_label = new Map(image_kinds);

function delete_button(what, name, resource, id, after) {
  return h('button', {type: 'button', class: 'danger', onclick: () => guarded(async () => {
    if (!confirm_action(`Delete ${what} ${name}?`)) return;
    await api.remove(resource, id);
    await after();
  })}, 'Delete');
}

// ---- images ------------------------------------------------------------------------------

export function images_view(root) {
  let nodes = new Map();
  const {table: t, tbody} = table(['Name', 'Kind', 'Size', 'Disks', 'Stored on', 'Protected', 'Updated', '']);
  const form = h('form', {id: 'image-form', class: 'inline'},
    field('Name', input('name', {required: true, size: 18}), 'as in the chunk store'),
    field('Kind', select('kind', image_kinds.map(([value, label]) => ({value, label})))),
    field('Description', input('description', {size: 24})),
    h('button', {type: 'submit'}, 'Add image'));
  on_submit(form, async data => {
    await api.create('images', {name: data.get('name').trim(), kind: data.get('kind'),
                                description: data.get('description')});
    form.reset();
    await load();
  });

  function row(img) {
    const prot = input('protected', {type: 'checkbox', checked: img.protected,
                                     title: 'protected images cannot be captured over or deleted'});
    prot.addEventListener('change', () => guarded(async () => {
      await api.update('images', img.id, {protected: prot.checked});
      await load();
    }));
    const disks = Array.isArray(img.disks) ? img.disks.length : (img.disks ?? '');
    return h('tr', {dataset: {id: img.id}},
      h('td', {class: 'name'}, img.name, img.description ? h('div', {class: 'sub'}, img.description) : null),
      h('td', {}, image_kind_label.get(img.kind) || img.kind),
      h('td', {}, human_bytes(img.size_bytes)),
      h('td', {}, String(disks)),
      h('td', {}, (img.storage_nodes || []).map(id => nodes.get(id)?.name ?? `#${id}`).join(', ')),
      h('td', {}, prot),
      h('td', {}, human_time(img.updated_at)),
      h('td', {class: 'actions'}, delete_button('image', img.name, 'images', img.id, load)));
  }

  async function load() {
    let images;
    [nodes, images] = await Promise.all([api.by_id('storage-nodes'), api.list('images')]);
    clear(tbody, images.map(row));
    empty_row(tbody, 8, 'no images yet: capture one or import from FOG (shoal fog import)');
  }

  clear(root, h('h2', {}, 'Images'), h('section', {class: 'bar'}, form), t);
  return {load};
}

// ---- storage nodes and groups -------------------------------------------------------------

export function storage_view(root) {
  let sgroups = new Map();
  const nodes_t = table(['Node', 'URL', 'Path', 'Storage group', 'Master', 'Enabled', '']);
  const groups_t = table(['Storage group', 'Description', '']);
  const group_pick = select('storage_group_id', []);

  const node_form = h('form', {id: 'node-form', class: 'inline'},
    field('Name', input('name', {required: true, size: 12})),
    field('URL', input('url', {required: true, placeholder: 'http://10.0.0.2:8080/', size: 24})),
    field('Path', input('path', {required: true, placeholder: '/srv/shoal/store', size: 18})),
    field('Storage group', group_pick),
    h('label', {class: 'check'}, input('master', {type: 'checkbox'}), ' master'),
    h('button', {type: 'submit'}, 'Add node'));
  on_submit(node_form, async data => {
    const body = {name: data.get('name').trim(), url: data.get('url').trim(),
                  path: data.get('path').trim(), master: data.get('master') === 'on', enabled: true};
    if (data.get('storage_group_id')) body.storage_group_id = Number(data.get('storage_group_id'));
    await api.create('storage-nodes', body);
    node_form.reset();
    await load();
  });

  const group_form = h('form', {id: 'sgroup-form', class: 'inline'},
    field('Name', input('name', {required: true, size: 12})),
    field('Description', input('description', {size: 24})),
    h('button', {type: 'submit'}, 'Add storage group'));
  on_submit(group_form, async data => {
    await api.create('storage-groups', {name: data.get('name').trim(),
                                        description: data.get('description')});
    group_form.reset();
    await load();
  });

  function toggle(resource, id, key, value) {
    const box = input(key, {type: 'checkbox', checked: value});
    box.addEventListener('change', () => guarded(async () => {
      await api.update(resource, id, {[key]: box.checked});
      await load();
    }));
    return box;
  }

  function node_row(n) {
    return h('tr', {dataset: {id: n.id}},
      h('td', {class: 'name'}, n.name),
      h('td', {class: 'mono'}, n.url),
      h('td', {class: 'mono'}, n.path),
      h('td', {}, sgroups.get(n.storage_group_id)?.name ?? ''),
      h('td', {}, toggle('storage-nodes', n.id, 'master', n.master)),
      h('td', {}, toggle('storage-nodes', n.id, 'enabled', n.enabled)),
      h('td', {class: 'actions'}, delete_button('storage node', n.name, 'storage-nodes', n.id, load)));
  }

  function group_row(g) {
    return h('tr', {dataset: {id: g.id}},
      h('td', {class: 'name'}, g.name),
      h('td', {}, g.description || ''),
      h('td', {class: 'actions'}, delete_button('storage group', g.name, 'storage-groups', g.id, load)));
  }

  async function load() {
    let nodes;
    [sgroups, nodes] = await Promise.all([api.by_id('storage-groups'), api.list('storage-nodes')]);
    clear(group_pick, h('option', {value: ''}, '(none)'),
          [...sgroups.values()].map(g => h('option', {value: g.id}, g.name)));
    clear(nodes_t.tbody, nodes.map(node_row));
    empty_row(nodes_t.tbody, 7, 'no storage nodes: shoald serves images from its own store');
    clear(groups_t.tbody, [...sgroups.values()].map(group_row));
    empty_row(groups_t.tbody, 3, 'no storage groups');
  }

  clear(root,
    h('h2', {}, 'Storage nodes'), h('section', {class: 'bar'}, node_form), nodes_t.table,
    h('h2', {}, 'Storage groups'), h('section', {class: 'bar'}, group_form), groups_t.table);
  return {load};
}
