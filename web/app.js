// The web app's shell: hash routing, navigation by role, sign-in (a pasted token, or an
// identity provider through oidc.js), and the shared helpers
// the pages use. Pages are in views.js (documents, viewer, ask, search) and admin.js
// (audit, tenant admin, platform admin).

import * as api from './api.js';
import * as views from './views.js';
import * as admin from './admin.js';
import * as oidc from './oidc.js';

// Builds an element: h('p', {class: 'x'}, 'text', child).
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Replaces the page's content and moves focus to its heading (screen readers hear it).
export function render(title, ...children) {
  const main = document.getElementById('main');
  const heading = h('h1', { tabindex: '-1' }, title);
  main.replaceChildren(heading, ...children);
  document.title = `${title} · Bulkhead`;
  heading.focus({ preventScroll: true });
}

// An error in words: the API's message, never its JSON.
export function errorBox(error) {
  const message = error instanceof Error ? error.message : String(error);
  return h('div', { class: 'error', role: 'alert' }, h('strong', {}, 'Error. '), message);
}

export function notify(message) {
  const notice = document.getElementById('notice');
  notice.textContent = message;
  notice.classList.add('shown');
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => notice.classList.remove('shown'), 4000);
}

export function when(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

const PAGES = [
  { path: 'documents', label: 'Documents', roles: ['reader', 'editor', 'admin'], view: views.documents },
  { path: 'ask', label: 'Ask', roles: ['reader', 'editor', 'admin'], view: views.ask },
  { path: 'search', label: 'Search', roles: ['reader', 'editor', 'admin'], view: views.search },
  { path: 'audit', label: 'Audit', roles: ['auditor', 'admin'], view: admin.audit },
  { path: 'admin', label: 'Tokens & usage', roles: ['admin'], view: admin.tenantAdmin },
  { path: 'tenants', label: 'Tenants', roles: ['platform_admin'], view: admin.platform },
];

function allowed() {
  return PAGES.filter((page) => api.hasRole(...page.roles));
}

function signedIn() {
  const claims = api.claims();
  return claims && (!claims.exp || claims.exp * 1000 > Date.now());
}

function signIn(message) {
  const field = h('textarea', {
    id: 'token', name: 'token', rows: '5', required: true, spellcheck: 'false',
    autocomplete: 'off', 'aria-describedby': 'token-help',
  });
  const problem = h('div', { id: 'signin-error' });
  const form = h('form', {
    class: 'card narrow',
    onsubmit: (event) => {
      event.preventDefault();
      const value = field.value.trim();
      const claims = api.claims(value);
      if (!claims) {
        problem.replaceChildren(errorBox('This is not a Bulkhead token: paste the whole token (three parts separated by dots).'));
        return;
      }
      if (claims.exp && claims.exp * 1000 <= Date.now()) {
        problem.replaceChildren(errorBox('This token has expired: ask your administrator for a new one.'));
        return;
      }
      api.setToken(value);
      const first = allowed()[0];
      location.hash = first ? `#/${first.path}` : '#/';
      route();
    },
  },
  h('label', { for: 'token' }, 'Access token'),
  h('p', { id: 'token-help', class: 'muted' },
    'Paste the token your administrator gave you. It stays in this browser tab only and is forgotten when you close it.'),
  field,
  problem,
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  // Identity providers the appliance is configured for: one button each, beside the form.
  const providers = h('section', { class: 'card narrow sso', id: 'sso', 'aria-label': 'Sign in with your organisation', hidden: true });
  oidc.providers().then((list) => {
    if (!list.length) return;
    const failed = h('div', {});
    providers.replaceChildren(
      h('p', { class: 'muted' }, 'Sign in with your organisation’s account:'),
      ...list.map((provider) => h('button', {
        type: 'button', class: 'primary sso-button',
        onclick: () => oidc.begin(provider).catch((error) => failed.replaceChildren(errorBox(error))),
      }, `Sign in with ${provider.display_name}`)),
      failed,
      h('p', { class: 'muted small' }, 'Or paste an access token below.'));
    providers.hidden = false;
  }).catch(() => {});
  render('Sign in',
    h('p', { class: 'lede' }, 'Answers from your own contracts: every sentence checked against them, every source cited.'),
    message ? errorBox(message) : '', providers, form);
  document.getElementById('nav').replaceChildren();
  document.getElementById('who').replaceChildren();
}

function chrome(current) {
  const nav = document.getElementById('nav');
  nav.replaceChildren(h('ul', {}, allowed().map((page) => h('li', {},
    h('a', { href: `#/${page.path}`, 'aria-current': page.path === current ? 'page' : false }, page.label)))));
  const claims = api.claims() || {};
  const role = (claims.roles || []).join(', ').replace('platform_admin', 'platform admin');
  document.getElementById('who').replaceChildren(
    h('span', { class: 'muted' }, `${claims.sub || ''} · ${role}`),
    h('button', {
      type: 'button', class: 'link', onclick: () => {
        api.signOut();
        location.hash = '#/signin';
      },
    }, 'Sign out'));
}

// `#/documents/d_…?start=1&end=9` → { parts: ['documents', 'd_…'], query: URLSearchParams }.
export function currentRoute() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query] = hash.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query || '') };
}

export function route() {
  const { parts, query } = currentRoute();
  if (!signedIn()) {
    const expired = api.token() && api.claims() ? 'Your session has expired: sign in again.' : '';
    api.signOut();
    signIn(expired);
    return;
  }
  const pages = allowed();
  const page = pages.find((candidate) => candidate.path === parts[0]);
  if (!page) {
    if (pages.length) location.replace(`#/${pages[0].path}`);
    else render('Nothing to show', errorBox('This token has no role the web app knows.'));
    return;
  }
  chrome(page.path);
  page.view(parts.slice(1), query);
}

window.addEventListener('bulkhead:unauthenticated', () => {
  api.signOut();
  signIn('Your session has expired or the token was refused: sign in again.');
  history.replaceState(null, '', '#/signin');
});
window.addEventListener('hashchange', route);

// Back from an identity provider (the redirect URI): finish signing in, then the app.
async function start() {
  if (location.pathname !== oidc.CALLBACK) {
    route();
    return;
  }
  render('Signing in', h('p', { class: 'muted' }, 'Finishing sign-in with your identity provider…'));
  try {
    const { token, session } = await oidc.complete();
    api.setToken(token, session);
    const first = allowed()[0];
    history.replaceState(null, '', first ? `/#/${first.path}` : '/#/');
    route();
  } catch (error) {
    api.signOut();
    signIn(error.message);
  }
}
start();
