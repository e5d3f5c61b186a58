// Sign-in through an identity provider: OIDC authorization code with PKCE (S256), done by
// the browser as a public client (no secret). The verifier, state and nonce live in this
// tab's session storage for the round trip only; the token the provider issues is then
// checked by the appliance (GET /v1/auth/session, the same verifier as every request)
// before the app uses it, exactly like a pasted one. Nothing here is trusted by the
// appliance: it only decides which token to offer it.

import { claims } from './api.js';

const FLOW = 'bulkhead.oidc';
// The redirect URI: the app's own page (src/api/web.rs serves it), which finishes the flow.
export const CALLBACK = '/signin/callback';

function base64url(bytes) {
  let binary = '';
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function random(length) {
  return base64url(crypto.getRandomValues(new Uint8Array(length)));
}

class SignInError extends Error {}

// The identity providers this appliance lets users sign in with (public settings only).
export async function providers() {
  const response = await fetch('/v1/auth/providers', { cache: 'no-store' });
  if (!response.ok) return [];
  return (await response.json()).providers || [];
}

// Sends the browser to the provider's authorization endpoint (a top-level navigation).
export async function begin(provider) {
  const verifier = random(32);
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  const flow = {
    issuer: provider.issuer,
    verifier,
    state: random(16),
    nonce: random(16),
    redirect: `${location.origin}${CALLBACK}`,
  };
  sessionStorage.setItem(FLOW, JSON.stringify(flow));
  const url = new URL(provider.authorization_endpoint);
  for (const [name, value] of Object.entries({
    response_type: 'code',
    client_id: provider.client_id,
    redirect_uri: flow.redirect,
    scope: provider.scopes,
    state: flow.state,
    nonce: flow.nonce,
    code_challenge: base64url(digest),
    code_challenge_method: 'S256',
  })) url.searchParams.set(name, value);
  location.assign(url.toString());
}

function audiences(token) {
  const aud = (claims(token) || {}).aud;
  return Array.isArray(aud) ? aud : [aud];
}

// Finishes the flow on the callback page: checks `state`, exchanges the code with the
// verifier, picks the token addressed to this appliance, checks the id_token's nonce, and
// has the appliance verify the token. Returns { token, session }, or throws an Error whose
// message says in words what went wrong.
export async function complete() {
  const params = new URLSearchParams(location.search);
  let flow = null;
  try {
    flow = JSON.parse(sessionStorage.getItem(FLOW) || 'null');
  } catch {
    flow = null;
  }
  sessionStorage.removeItem(FLOW);
  // The code and state leave the address bar and the history at once.
  history.replaceState(null, '', '/#/signin');
  if (params.get('error')) {
    const reason = params.get('error') === 'access_denied'
      ? 'access was denied'
      : (params.get('error_description') || params.get('error'));
    throw new SignInError(`The identity provider did not sign you in: ${reason}. Try again, or ask your administrator.`);
  }
  if (!flow) {
    throw new SignInError('This sign-in was not started from this tab, or was already finished: start it again.');
  }
  if (!params.get('state') || params.get('state') !== flow.state) {
    throw new SignInError('The identity provider’s answer does not match the sign-in started here (state mismatch), so it was refused: start again.');
  }
  const code = params.get('code');
  if (!code) throw new SignInError('The identity provider sent no authorization code: start again.');
  const provider = (await providers()).find((candidate) => candidate.issuer === flow.issuer);
  if (!provider) throw new SignInError('This identity provider is no longer configured on the appliance.');

  let response;
  try {
    response = await fetch(provider.token_endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: flow.redirect,
        client_id: provider.client_id,
        code_verifier: flow.verifier,
      }),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    throw new SignInError(`${provider.display_name} could not be reached to finish signing in: check the connection and try again.`);
  }
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  if (!response.ok) {
    const reason = body.error_description || body.error || `HTTP ${response.status}`;
    throw new SignInError(`${provider.display_name} refused to issue a token (${reason}): start again.`);
  }
  if (body.id_token && (claims(body.id_token) || {}).nonce !== flow.nonce) {
    throw new SignInError(`The token from ${provider.display_name} does not belong to this sign-in (nonce mismatch), so it was refused.`);
  }
  // The id_token, else an access token that is a JWT, addressed to what the appliance accepts.
  const token = [body.id_token, body.access_token]
    .find((candidate) => typeof candidate === 'string' && claims(candidate)
      && audiences(candidate).includes(provider.audience));
  if (!token) {
    throw new SignInError(`${provider.display_name} issued no token addressed to this appliance (audience “${provider.audience}”): ask your administrator.`);
  }

  // The appliance decides whether it accepts the token, never the browser.
  let session;
  try {
    session = await fetch('/v1/auth/session', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
  } catch {
    throw new SignInError('The appliance could not be reached. Check the connection and try again.');
  }
  if (session.status === 401) {
    throw new SignInError(`The appliance refused the token from ${provider.display_name}: this provider may not sign you in to that organisation or with those roles. Ask your administrator.`);
  }
  if (!session.ok) {
    let message = `The appliance could not check the token (HTTP ${session.status}).`;
    try {
      message = (await session.json()).error.message || message;
    } catch {
      // keep the generic message
    }
    throw new SignInError(message);
  }
  return { token, session: await session.json() };
}
