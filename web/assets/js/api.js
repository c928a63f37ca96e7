// The HTTP API, as the browser sees it: JSON in and out, errors as ApiError with the
// server's code and message (shown to the person as they are), the admin token from the
// browser session, and one 'zhiku:unauthorized' event when the token stops working.

const TOKEN_KEY = 'zhiku.adminToken';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function adminToken() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setAdminToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Turn a failed fetch Response into an ApiError. */
export async function errorFrom(response) {
  let code = 'http_' + response.status;
  let message = response.statusText || ('HTTP ' + response.status);
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch (_) { /* not JSON: keep the status text */ }
  if (response.status === 401) window.dispatchEvent(new CustomEvent('zhiku:unauthorized'));
  return new ApiError(response.status, code, message);
}

/** One request with a bearer token (the admin token unless another is given). */
export async function request(method, path, body, { token, signal } = {}) {
  const headers = { Authorization: 'Bearer ' + (token ?? adminToken()) };
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', e.message);
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const api = {
  get: (path, opts) => request('GET', path, undefined, opts),
  post: (path, body, opts) => request('POST', path, body ?? {}, opts),
  patch: (path, body, opts) => request('PATCH', path, body, opts),
  del: (path, opts) => request('DELETE', path, undefined, opts),
  /** Upload files (multipart `file` fields) with optional extra fields. */
  upload: (path, files, fields = {}, opts) => {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, typeof v === 'string' ? v : JSON.stringify(v));
    for (const f of files) form.append('file', f, f.name);
    return request('POST', path, form, opts);
  },
};
