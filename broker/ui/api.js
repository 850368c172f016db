// api.js - the dashboard's one way to the broker: the API of this origin,
// called with the user's token. The token lives in this tab's
// sessionStorage only (never a URL, never localStorage): closing the tab
// forgets it. What the API refuses is refused here: a 401 ends the session
// and brings back the login, a 403 is shown as the API words it.

const KEY = 'quorum.token';

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(t) {
  sessionStorage.setItem(KEY, t);
}

export function logout() {
  sessionStorage.removeItem(KEY);
}

// An API refusal: status (401, 403, 404...), the API's error code and message.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// GET path (with its query) as JSON. Rejects with an ApiError on any answer
// but 2xx, and with one of status 0 when the broker cannot be reached.
export async function get(path) {
  const t = token();
  let r;
  try {
    r = await fetch(path, {
      headers: t ? { Authorization: 'Bearer ' + t } : {},
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, 'unreachable', 'the broker cannot be reached (' + e.message + ')');
  }
  let body = null;
  try {
    body = await r.json();
  } catch (e) {
    body = null;
  }
  if (!r.ok) {
    const err = body && body.error ? body.error : {};
    throw new ApiError(r.status, err.code || 'http_' + r.status,
      err.message || 'the broker answered ' + r.status);
  }
  return body;
}

// Every page of GET /v1/projects, in id order.
export async function projects() {
  let out = [];
  let after = null;
  for (;;) {
    const page = await get('/v1/projects?limit=1000' + (after !== null ? '&after=' + after : ''));
    out = out.concat(page.projects);
    if (page.next_after === null || page.next_after === undefined) return out;
    after = page.next_after;
  }
}

// POST path with a JSON body; as get() for the answer. opts.keepalive lets
// a request outlive the page (a release when the tab closes).
export async function post(path, body, opts) {
  const t = token();
  let r;
  try {
    r = await fetch(path, {
      method: 'POST',
      headers: Object.assign({ 'Content-Type': 'application/json' }, t ? { Authorization: 'Bearer ' + t } : {}),
      body: JSON.stringify(body || {}),
      cache: 'no-store',
      credentials: 'omit',
      keepalive: !!(opts && opts.keepalive),
    });
  } catch (e) {
    throw new ApiError(0, 'unreachable', 'the broker cannot be reached (' + e.message + ')');
  }
  let out = null;
  try {
    out = await r.json();
  } catch (e) {
    out = null;
  }
  if (!r.ok) {
    const err = out && out.error ? out.error : {};
    throw new ApiError(r.status, err.code || 'http_' + r.status, err.message || 'the broker answered ' + r.status);
  }
  return out;
}
