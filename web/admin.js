// Auditor, tenant-admin and platform-admin pages. The platform pages show tenants'
// records only (name, tier, dates): never a tenant's content.

import * as api from './api.js';
import { h, render, errorBox, notify, when, bytes } from './app.js';


function field(id, label, attrs = {}) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), h('input', { id, name: id, ...attrs }));
}

function isoOrUndefined(value) {
  return value ? new Date(value).toISOString().replace(/\.\d{3}Z$/, 'Z') : undefined;
}

function currentQuarter() {
  const now = new Date();
  return `${now.getUTCFullYear()}Q${Math.floor(now.getUTCMonth() / 3) + 1}`;
}

// ---- audit -------------------------------------------------------------------------------

export function audit() {
  const table = h('div', { 'aria-live': 'polite' });
  const from = field('from', 'From', { type: 'datetime-local' });
  const to = field('to', 'To', { type: 'datetime-local' });
  const action = field('action', 'Action contains', { type: 'text', placeholder: 'e.g. ask, document' });
  const outcome = h('div', { class: 'field' }, h('label', { for: 'outcome' }, 'Outcome'),
    h('select', { id: 'outcome' }, ['any', 'ok', 'denied', 'failed'].map((o) => h('option', { value: o }, o))));
  let cursor = null;

  async function load(event, more = false) {
    if (event) event.preventDefault();
    if (!more) cursor = null;
    const params = new URLSearchParams({ limit: '100' });
    const fromValue = isoOrUndefined(from.querySelector('input').value);
    const toValue = isoOrUndefined(to.querySelector('input').value);
    if (fromValue) params.set('from', fromValue);
    if (toValue) params.set('to', toValue);
    if (cursor) params.set('cursor', cursor);
    try {
      const body = await api.get(api.tenantPath(`/audit?${params}`));
      const wanted = action.querySelector('input').value.trim().toLowerCase();
      const result = outcome.querySelector('select').value;
      const events = body.events.filter((e) => (!wanted || e.action.toLowerCase().includes(wanted))
        && (result === 'any' || e.outcome === result));
      cursor = body.next_cursor;
      const rows = events.map((e) => h('tr', {},
        h('td', {}, String(e.seq)), h('td', {}, when(e.at)), h('td', { class: 'mono' }, e.user),
        h('td', {}, e.action), h('td', { class: 'mono' }, e.resource),
        h('td', {}, h('span', { class: `outcome ${e.outcome}` }, e.outcome))));
      const tbody = more ? table.querySelector('tbody') : null;
      if (tbody) {
        tbody.append(...rows);
      } else {
        table.replaceChildren(h('table', { class: 'table' },
          h('caption', { class: 'sr-only' }, 'Audit events'),
          h('thead', {}, h('tr', {}, ['#', 'When', 'Who (pseudonym)', 'Action', 'Resource', 'Outcome']
            .map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, rows)));
      }
      table.querySelector('.more')?.remove();
      if (cursor) {
        table.append(h('button', { type: 'button', class: 'more', onclick: () => load(null, true) }, 'Load more'));
      }
    } catch (error) {
      table.replaceChildren(errorBox(error));
    }
  }

  const quarter = field('quarter', 'Quarter', { type: 'text', value: currentQuarter(), pattern: '\\d{4}[Qq][1-4]' });
  const report = h('div', { class: 'report' });
  async function review(event) {
    event.preventDefault();
    const q = quarter.querySelector('input').value.trim();
    try {
      const html = await api.request('GET', api.tenantPath(`/reports/access-review?quarter=${encodeURIComponent(q)}&format=html`), undefined, 'text');
      // The report is shown sandboxed (no scripts, its own origin) with our stylesheet in
      // place of its inline one, which the Content-Security-Policy would refuse.
      const styled = html.replace(/<style>[\s\S]*?<\/style>/,
        `<link rel="stylesheet" href="${location.origin}/assets/report.css">`);
      const frame = h('iframe', { sandbox: '', title: `Access review ${q}`, class: 'report-frame' });
      frame.srcdoc = styled;
      report.replaceChildren(frame);
    } catch (error) {
      report.replaceChildren(errorBox(error));
    }
  }

  render('Audit',
    h('form', { class: 'card filters', onsubmit: load, 'aria-label': 'Filter events' },
      from, to, action, outcome, h('button', { type: 'submit', class: 'primary' }, 'Show events')),
    table,
    h('h2', {}, 'Access review'),
    h('form', { class: 'card filters', onsubmit: review, 'aria-label': 'Access review' },
      quarter, h('button', { type: 'submit' }, 'Show the review')),
    report);
  load();
}

// ---- tenant admin ------------------------------------------------------------------------

export function tenantAdmin() {
  const list = h('div');
  const output = h('div', { 'aria-live': 'polite' });
  const usage = h('div', { class: 'usage' });
  const roles = ['reader', 'editor', 'admin', 'auditor'];

  async function showTokens() {
    try {
      const { tokens } = await api.get(api.tenantPath('/tokens'));
      list.replaceChildren(tokens.length ? h('table', { class: 'table' },
        h('caption', {}, 'Tokens that have not expired'),
        h('thead', {}, h('tr', {}, ['User', 'Roles', 'Issued', 'Expires', 'Token id', ''].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, tokens.map((t) => h('tr', {},
          h('td', {}, t.user ?? h('span', { class: 'muted' }, 'unknown (tenant locked)')), h('td', {}, t.roles.join(', ')), h('td', {}, when(t.issued_at)), h('td', {}, when(t.expires_at)),
          h('td', { class: 'mono' }, t.jti),
          h('td', {}, t.revoked ? h('span', { class: 'muted' }, 'Revoked') : h('button', {
            type: 'button', class: 'danger small', 'aria-label': `Revoke the token of ${t.user ?? t.jti}`, onclick: () => revoke(t.jti),
          }, 'Revoke'))))))
        : h('p', { class: 'muted' }, 'No tokens that have not expired.'));
    } catch (error) {
      list.replaceChildren(errorBox(error));
    }
  }

  async function revoke(jti) {
    if (!window.confirm('Revoke this token? Whoever holds it is refused from now on.')) return;
    try {
      await api.del(api.tenantPath(`/tokens/${encodeURIComponent(jti)}`));
      notify('Token revoked.');
      showTokens();
    } catch (error) {
      output.replaceChildren(errorBox(error));
    }
  }

  const user = field('user', 'User', { type: 'text', required: true, autocomplete: 'off' });
  const ttl = field('ttl', 'Valid for (hours)', { type: 'number', min: '1', max: '720', value: '8' });
  const roleBoxes = h('fieldset', { class: 'modes' }, h('legend', {}, 'Roles'),
    roles.map((role, i) => h('label', { class: 'mode' }, h('input', { type: 'checkbox', name: 'role', value: role, checked: i === 0 }), ` ${role}`)));

  async function mint(event) {
    event.preventDefault();
    const chosen = [...roleBoxes.querySelectorAll('input:checked')].map((box) => box.value);
    const name = user.querySelector('input').value.trim();
    try {
      const body = await api.post(api.tenantPath('/tokens'), {
        user: name, roles: chosen, ttl_seconds: Number(ttl.querySelector('input').value) * 3600,
      });
      output.replaceChildren(h('div', { class: 'card secret' },
        h('p', {}, `Token for ${name}. Copy it now: it is not shown again.`),
        h('textarea', { readonly: true, rows: '4', 'aria-label': 'New token' }, body.token)));
      showTokens();
    } catch (error) {
      output.replaceChildren(errorBox(error));
    }
  }

  const jti = field('jti', 'Token id', { type: 'text', required: true });
  async function loadUsage() {
    try {
      const body = await api.get(api.tenantPath('/usage'));
      const items = [
        ['Documents', body.documents, String(body.documents)],
        ['Passages', body.chunks, String(body.chunks)],
        ['Stored', body.bytes_stored, bytes(body.bytes_stored)],
        ['Questions and searches', body.queries, String(body.queries)],
        ['Tokens read', body.tokens_in, String(body.tokens_in)],
        ['Tokens written', body.tokens_out, String(body.tokens_out)],
      ];
      const tokenMax = Math.max(body.tokens_in, body.tokens_out, 1);
      usage.replaceChildren(h('dl', { class: 'stats' }, items.map(([label, , text]) => h('div', {}, h('dt', {}, label), h('dd', {}, text)))),
        h('div', { class: 'bars', role: 'img', 'aria-label': `Tokens read ${body.tokens_in}, written ${body.tokens_out}` },
          [['read', body.tokens_in], ['written', body.tokens_out]].map(([label, n]) => h('div', { class: 'bar-row' },
            h('span', {}, `Tokens ${label}`),
            h('span', { class: `bar w${Math.round((n / tokenMax) * 20) * 5}` }),
            h('span', { class: 'mono' }, String(n))))));
    } catch (error) {
      usage.replaceChildren(errorBox(error));
    }
  }

  render('Tokens & usage',
    h('h2', {}, 'Usage'), usage,
    h('h2', {}, 'Mint a token'),
    h('form', { class: 'card filters', onsubmit: mint }, user, roleBoxes, ttl, h('button', { type: 'submit', class: 'primary' }, 'Mint')),
    output,
    h('h2', {}, 'Tokens'), list,
    h('form', { class: 'card filters', onsubmit: (event) => { event.preventDefault(); revoke(jti.querySelector('input').value.trim()); } },
      jti, h('button', { type: 'submit', class: 'danger' }, 'Revoke')));
  showTokens();
  loadUsage();
}

// ---- platform admin ----------------------------------------------------------------------

const TIERS = ['standard', 'premium', 'enterprise'];

export function platform() {
  const list = h('div', { 'aria-live': 'polite' });
  const output = h('div', { 'aria-live': 'polite' });
  const verify = h('div');

  let cursor = null;

  async function load(more = false) {
    if (!more) cursor = null;
    const params = new URLSearchParams({ limit: '100' });
    if (cursor) params.set('cursor', cursor);
    try {
      const body = await api.get(`/v1/tenants?${params}`);
      cursor = body.next_cursor;
      const rows = body.tenants.map((t) => h('tr', {},
        h('td', {}, t.name), h('td', {}, tierSelect(t)), h('td', {}, when(t.created_at)),
        h('td', { class: 'mono' }, t.tenant_id),
        h('td', {}, h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete tenant ${t.name}`, onclick: () => remove(t) }, 'Delete'))));
      const tbody = more ? list.querySelector('tbody') : null;
      if (tbody) {
        tbody.append(...rows);
      } else {
        list.replaceChildren(rows.length ? h('table', { class: 'table' },
          h('caption', { class: 'sr-only' }, 'Tenants'),
          h('thead', {}, h('tr', {}, ['Name', 'Tier', 'Created', 'Tenant id', ''].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, rows))
          : h('p', { class: 'empty' }, 'No tenants yet.'));
      }
      list.querySelector('.more')?.remove();
      if (cursor) {
        list.append(h('button', { type: 'button', class: 'more', onclick: () => load(true) }, 'Load more'));
      }
    } catch (error) {
      list.replaceChildren(errorBox(error));
    }
  }

  function tierSelect(t) {
    const select = h('select', { class: 'tier-select', 'aria-label': `Tier of ${t.name}`, onchange: () => changeTier(t, select) },
      TIERS.map((tier) => h('option', { value: tier, selected: tier === t.tier }, tier)));
    return select;
  }

  async function changeTier(t, select) {
    const tier = select.value;
    if (!window.confirm(`Move ${t.name} from ${t.tier} to ${tier}? It takes effect on its next request; nothing in flight is lost.`)) {
      select.value = t.tier;
      return;
    }
    try {
      const body = await api.patch(`/v1/tenants/${encodeURIComponent(t.tenant_id)}`, { tier });
      t.tier = body.tier;
      notify(`${t.name} is now ${body.tier}.`);
    } catch (error) {
      select.value = t.tier;
      output.replaceChildren(errorBox(error));
    }
  }

  async function remove(t) {
    const typed = window.prompt(`Deleting ${t.name} destroys its key and every document, irreversibly. Type the tenant's name to confirm.`);
    if (typed === null) return;
    if (typed.trim() !== t.name) {
      output.replaceChildren(errorBox('The name did not match: nothing was deleted.'));
      return;
    }
    try {
      const body = await api.del(`/v1/tenants/${encodeURIComponent(t.tenant_id)}`);
      output.replaceChildren(h('div', { class: 'card' },
        h('h2', {}, `Deletion certificate for ${t.name}`),
        h('p', {}, 'Keep this certificate: it is signed by the appliance and verifies with its published key.'),
        h('pre', { class: 'certificate', tabindex: '0' }, JSON.stringify(body.certificate, null, 2)),
        h('details', {}, h('summary', {}, 'Signed (compact JWS)'), h('pre', { class: 'certificate' }, body.jws))));
      load();
    } catch (error) {
      output.replaceChildren(errorBox(error));
    }
  }

  const name = field('tenant-name', 'Name', { type: 'text', required: true });
  const tier = h('div', { class: 'field' }, h('label', { for: 'tier' }, 'Tier'),
    h('select', { id: 'tier' }, TIERS.map((t) => h('option', { value: t }, t))));
  async function create(event) {
    event.preventDefault();
    try {
      const body = await api.post('/v1/tenants', { name: name.querySelector('input').value.trim(), tier: tier.querySelector('select').value });
      output.replaceChildren(h('div', { class: 'card secret' },
        h('p', {}, `Created ${body.name} (${body.tier}). Send this single-use invitation to its first administrator; it expires in 24 hours.`),
        h('textarea', { readonly: true, rows: '3', 'aria-label': 'Invitation' }, body.invitation)));
      load();
    } catch (error) {
      output.replaceChildren(errorBox(error));
    }
  }

  async function check() {
    try {
      const body = await api.get('/v1/audit/verify');
      verify.replaceChildren(h('p', { class: body.ok ? 'ok' : 'error', role: 'status' },
        body.ok ? `The audit chain verifies: ${body.entries} entries, head ${body.head.slice(0, 16)}…`
          : `The audit chain does NOT verify (${body.entries} entries).`));
    } catch (error) {
      verify.replaceChildren(errorBox(error));
    }
  }

  render('Tenants',
    h('form', { class: 'card filters', onsubmit: create, 'aria-label': 'Create a tenant' }, name, tier,
      h('button', { type: 'submit', class: 'primary' }, 'Create tenant')),
    output, list,
    h('h2', {}, 'Audit chain'),
    h('button', { type: 'button', onclick: check }, 'Verify the audit chain'), verify);
  load();
}
