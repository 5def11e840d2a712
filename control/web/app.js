// The console's shell: login, the navigation, and one view at a time picked by the URL's
// hash (#/hosts, #/tasks, ...), so a bookmark or a reload lands on the same page.
import * as api from './api.js';
import {clear, flash, on_submit} from './dom.js';
import {hosts_view, groups_view} from './hosts.js';
import {tasks_view, sessions_view, schedules_view} from './tasks.js';
import {images_view, storage_view} from './inventory.js';

const views = {
  hosts: hosts_view,
  groups: groups_view,
  images: images_view,
  tasks: tasks_view,
  sessions: sessions_view,
  storage: storage_view,
  schedules: schedules_view,
};

const $ = id => document.getElementById(id);

// The view on screen; its stop() ends its polling when another view replaces it.
let current = null;

function show_login() {
  if (current && current.stop) current.stop();
  current = null;
  clear($('view'));
  $('top').hidden = true;
  $('login').hidden = false;
  $('login-password').value = '';
  $('login-password').focus();
}

async function route() {
  if (!api.token()) {
    show_login();
    return;
  }
  $('login').hidden = true;
  $('top').hidden = false;
  $('who').textContent = sessionStorage.getItem('shoal.user') || '';
  const name = (location.hash.match(/^#\/([a-z-]+)/) || [])[1] || 'hosts';
  const make = views[name] || views.hosts;
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.getAttribute('href') === `#/${name}`);
  }
  if (current && current.stop) current.stop();
  flash('');
  const root = clear($('view'));
  root.dataset.view = name;
  current = make(root);
  try {
    await current.load();
  } catch (e) {
    if (e.status !== 401) flash(e.message);
  }
}

on_submit($('login-form'), async data => {
  $('login-error').textContent = '';
  try {
    await api.login(data.get('user'), data.get('password'));
  } catch (e) {
    // A wrong password is a 401 naming no field: say so plainly under the form.
    if (e.status === 401 || e.status === 403) e.field = null;
    if (e.status === 401) e.message = e.message || 'wrong user or password';
    throw e;
  }
  sessionStorage.setItem('shoal.user', data.get('user'));
  if (!location.hash) location.hash = '#/hosts';
  route();
});

$('logout').addEventListener('click', () => api.logout());
api.when_logged_out(() => { sessionStorage.removeItem('shoal.user'); show_login(); });
window.addEventListener('hashchange', route);
route();
