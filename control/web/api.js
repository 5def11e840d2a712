// The console's one door to shoald's REST API (docs/control.md, "REST API"). Every call
// carries the session's token; a 401 anywhere drops the token and sends the person back
// to the login form. Errors come back as api_error with the server's `error` and `field`.

const token_key = 'shoal.token';
const base = '/api/v1';

export class api_error extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.field = body && body.field ? body.field : null;
    this.body = body || {};
  }
}

export function token() { return sessionStorage.getItem(token_key); }

export function forget_token() {
  sessionStorage.removeItem(token_key);
}

// Listeners for "the token is gone": the app shows the login form.
const on_logout = [];
export function when_logged_out(fn) { on_logout.push(fn); }

export async function login(user, password) {
  const r = await call('POST', '/login', {user, password}, {anonymous: true});
  sessionStorage.setItem(token_key, r.token);
  return r;
}

export function logout() {
  forget_token();
  for (const fn of on_logout) fn();
}

// One request. `body` is sent as JSON unless opts.content_type says otherwise (the CSV
// import sends text). Returns the parsed JSON (or null for an empty answer).
export async function call(method, path, body, opts = {}) {
  const headers = {Accept: 'application/json'};
  const t = token();
  if (t && !opts.anonymous) headers.Authorization = `Bearer ${t}`;
  let payload;
  if (body !== undefined && body !== null) {
    if (opts.content_type) {
      headers['Content-Type'] = opts.content_type;
      payload = body;
    } else {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
  }
  let res;
  try {
    res = await fetch(base + path, {method, headers, body: payload, cache: 'no-store'});
  } catch (e) {
    throw new api_error(0, {error: `shoald did not answer (${e.message}); is it running?`});
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = {error: text.slice(0, 300)}; }
  }
  if (res.status === 401 && !opts.anonymous) {
    logout();
    throw new api_error(401, data || {error: 'session expired: log in again'});
  }
  if (!res.ok) throw new api_error(res.status, data);
  return data;
}

// A list endpoint's rows, whether the server answers with an array or wraps it in an
// object ({"items": [...]} or {"<resource>": [...]}).
export function rows_of(data) {
  if (Array.isArray(data)) return data;
  if (data && typeof data === 'object') {
    for (const k of ['items', 'data', 'results']) if (Array.isArray(data[k])) return data[k];
    for (const v of Object.values(data)) if (Array.isArray(v)) return v;
  }
  return [];
}

// Lists are paged by the server; the console asks for one large page (a lab has hundreds
// of hosts, not millions) so search and pickers see every row.
export const list_limit = 1000;

export async function list(resource, params = {}) {
  const q = new URLSearchParams({limit: String(list_limit), ...params});
  return rows_of(await call('GET', `/${resource}?${q}`));
}

export const get = (resource, id) => call('GET', `/${resource}/${id}`);
export const create = (resource, body) => call('POST', `/${resource}`, body);
export const update = (resource, id, body) => call('PATCH', `/${resource}/${id}`, body);
export const remove = (resource, id) => call('DELETE', `/${resource}/${id}`);

// Rows by id, for showing names where the API gives ids (a task's host, a host's image).
export async function by_id(resource, params) {
  const m = new Map();
  for (const r of await list(resource, params)) m.set(r.id, r);
  return m;
}
