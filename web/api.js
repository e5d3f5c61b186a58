// The API client: the token (session storage only, pasted or from an identity provider), JSON calls with errors in words,
// uploads with progress, and the streamed answer parsed from server-sent events.

const KEY = 'bulkhead.token';
const SESSION = 'bulkhead.session';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(KEY);
}

// `session`: what the appliance said of a token from an identity provider when it verified
// it (GET /v1/auth/session), whose own claims may name the tenant under another claim.
export function setToken(value, session) {
  sessionStorage.setItem(KEY, value);
  if (session) {
    sessionStorage.setItem(SESSION, JSON.stringify({
      sub: session.sub,
      tenant_id: session.tenant_id,
      roles: session.roles,
      exp: Math.floor(Date.parse(session.expires_at) / 1000),
    }));
  } else {
    sessionStorage.removeItem(SESSION);
  }
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(SESSION);
}

// The token's claims. The payload of a JWT is not secret; the server verifies it.
export function claims(value = token()) {
  if (!value) return null;
  if (value === token() && sessionStorage.getItem(SESSION)) {
    try {
      return JSON.parse(sessionStorage.getItem(SESSION));
    } catch {
      // fall back to the token's own claims
    }
  }
  const parts = value.split('.');
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

export function roles() {
  return (claims() || {}).roles || [];
}

export function hasRole(...wanted) {
  const mine = roles();
  return wanted.some((role) => mine.includes(role));
}

export function tenantPath(path) {
  const tenant = (claims() || {}).tenant_id;
  return `/v1/tenants/${encodeURIComponent(tenant || '')}${path}`;
}

// A refused token sends the user back to sign in (see app.js).
function refused(status) {
  if (status === 401) window.dispatchEvent(new CustomEvent('bulkhead:unauthenticated'));
}

async function errorOf(response) {
  let code = 'error';
  let message = `The request failed (HTTP ${response.status}).`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // not JSON: keep the generic message
  }
  refused(response.status);
  return new ApiError(response.status, code, message);
}

export async function request(method, path, body, accept = 'json') {
  const headers = { Authorization: `Bearer ${token()}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'The appliance could not be reached. Check the connection and try again.');
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  if (accept === 'blob') return response.blob();
  return accept === 'text' ? response.text() : response.json();
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body);
export const del = (path) => request('DELETE', path);
export const patch = (path, body) => request('PATCH', path, body);

// Uploads one file with progress (XMLHttpRequest: fetch reports no upload progress).
export function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', tenantPath('/documents'));
    xhr.setRequestHeader('Authorization', `Bearer ${token()}`);
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener('load', () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // keep null
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(body);
      } else {
        refused(xhr.status);
        const error = (body && body.error) || {};
        reject(new ApiError(xhr.status, error.code || 'error',
          error.message || `The upload failed (HTTP ${xhr.status}).`));
      }
    });
    xhr.addEventListener('error', () =>
      reject(new ApiError(0, 'network', 'The upload was interrupted: the appliance could not be reached.')));
    const form = new FormData();
    form.append('file', file, file.name);
    xhr.send(form);
  });
}

// Asks with `stream: true` and calls `onEvent(name, data)` for each server-sent event
// (`token`, `citations`, `done`, `error`) as it arrives.
export async function askStream(question, onEvent) {
  let response;
  try {
    response = await fetch(tenantPath('/ask'), {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${token()}`,
        'Content-Type': 'application/json',
        Accept: 'text/event-stream',
      },
      body: JSON.stringify({ question, stream: true }),
    });
  } catch {
    throw new ApiError(0, 'network', 'The appliance could not be reached. Check the connection and try again.');
  }
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length === 0) continue;
      let parsed;
      try {
        parsed = JSON.parse(data.join('\n'));
      } catch {
        continue;
      }
      if (name === 'error') {
        const error = parsed.error || {};
        throw new ApiError(500, error.code || 'error', error.message || 'The answer failed.');
      }
      onEvent(name, parsed);
    }
  }
}
