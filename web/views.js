// The reader's pages: documents (upload, status, catalogue, delete), the document viewer
// with the cited passage highlighted, ask (streamed, with citations) and search.

import * as api from './api.js';
import { h, render, errorBox, notify, when, bytes, currentRoute } from './app.js';

const HISTORY = 'bulkhead.history';

function viewerLink(documentId, start, end, label) {
  const query = start !== undefined ? `?start=${start}&end=${end}` : '';
  return h('a', { href: `#/documents/${encodeURIComponent(documentId)}${query}`, class: 'cite' }, label);
}

// ---- documents -------------------------------------------------------------------------

export function documents(parts, query) {
  if (parts[0]) {
    viewer(parts[0], query);
    return;
  }
  const list = h('div', { class: 'doclist', 'aria-live': 'polite' });
  const uploads = h('ul', { class: 'uploads', 'aria-label': 'Uploads' });
  const canWrite = api.hasRole('editor', 'admin');
  let timer = null;

  async function refresh() {
    clearTimeout(timer);
    let body;
    try {
      body = await api.get(api.tenantPath('/documents?limit=200'));
    } catch (error) {
      list.replaceChildren(errorBox(error));
      return;
    }
    const docs = body.documents;
    if (docs.length === 0) {
      list.replaceChildren(h('p', { class: 'empty' }, 'No documents yet.', canWrite ? ' Upload a contract to begin.' : ''));
      return;
    }
    const details = await Promise.all(docs.map((doc) => (doc.status === 'indexed'
      ? api.get(api.tenantPath(`/documents/${doc.document_id}`)).catch(() => doc)
      : Promise.resolve(doc))));
    list.replaceChildren(h('table', { class: 'table' },
      h('caption', { class: 'sr-only' }, 'Documents of this tenant'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Document'),
        h('th', { scope: 'col' }, 'Parties'),
        h('th', { scope: 'col' }, 'Dates'),
        h('th', { scope: 'col' }, 'Status'),
        canWrite ? h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')) : '')),
      h('tbody', {}, details.map((doc) => row(doc)))));
    if (docs.some((doc) => doc.status === 'queued') && currentRoute().parts[0] === 'documents') {
      timer = setTimeout(refresh, 1500);
    }
  }

  function row(doc) {
    const catalogue = doc.catalogue || {};
    const title = catalogue.title || doc.filename;
    const parties = (catalogue.parties || []).map((party) => party.name).join('; ');
    const dates = [
      catalogue.effective_date && `Effective ${catalogue.effective_date}`,
      catalogue.agreement_date && !catalogue.effective_date && `Dated ${catalogue.agreement_date}`,
      catalogue.expiration_date && `Expires ${catalogue.expiration_date}`,
    ].filter(Boolean);
    const status = doc.status === 'failed'
      ? h('span', { class: 'status failed' }, 'Failed', doc.error ? h('span', { class: 'reason' }, doc.error) : '')
      : h('span', { class: `status ${doc.status}` }, doc.status === 'indexed' ? `Indexed · ${doc.chunks} passages` : 'Indexing…');
    return h('tr', { 'data-document': doc.document_id },
      h('td', {}, doc.status === 'indexed'
        ? viewerLink(doc.document_id, undefined, undefined, title)
        : h('span', {}, title),
      h('div', { class: 'muted small' }, `${doc.filename} · ${bytes(doc.bytes)} · added ${when(doc.created_at)}`)),
      h('td', {}, parties || h('span', { class: 'muted' }, '—')),
      h('td', {}, dates.length ? dates.map((d) => h('div', {}, d)) : h('span', { class: 'muted' }, '—')),
      h('td', {}, status),
      canWrite ? h('td', { class: 'actions' }, h('button', {
        type: 'button', class: 'danger small', 'aria-label': `Delete ${title}`,
        onclick: () => remove(doc, title),
      }, 'Delete')) : '');
  }

  async function remove(doc, title) {
    if (!window.confirm(`Delete “${title}”? It is removed from search and answers at once. This cannot be undone.`)) return;
    try {
      await api.del(api.tenantPath(`/documents/${doc.document_id}`));
      notify(`Deleted ${title}.`);
    } catch (error) {
      list.prepend(errorBox(error));
      return;
    }
    refresh();
  }

  function send(files) {
    for (const file of files) {
      const bar = h('progress', { max: '100', value: '0', 'aria-label': `Upload progress of ${file.name}` });
      const state = h('span', { class: 'state' }, 'Uploading…');
      const item = h('li', {}, h('span', { class: 'name' }, file.name), bar, state);
      uploads.append(item);
      api.upload(file, (fraction) => { bar.value = Math.round(fraction * 100); })
        .then(() => {
          bar.value = 100;
          state.textContent = 'Uploaded';
          item.classList.add('done');
          refresh();
        })
        .catch((error) => {
          item.classList.add('failed');
          state.replaceChildren(errorBox(error));
        });
    }
  }

  const input = h('input', {
    type: 'file', id: 'files', multiple: true, class: 'sr-only',
    accept: '.txt,.md,.html,.htm,.pdf,.docx,text/plain,text/markdown,text/html,application/pdf,application/vnd.openxmlformats-officedocument.wordprocessingml.document',
    onchange: () => { send(input.files); input.value = ''; },
  });
  const zone = h('div', {
    class: 'dropzone',
    ondragover: (event) => { event.preventDefault(); zone.classList.add('over'); },
    ondragleave: () => zone.classList.remove('over'),
    ondrop: (event) => {
      event.preventDefault();
      zone.classList.remove('over');
      send(event.dataTransfer.files);
    },
  }, input,
  h('label', { for: 'files', class: 'button' }, 'Choose files'),
  h('span', { class: 'muted' }, ' or drop contracts here — PDF, Word, HTML, text.'));
  render('Documents', canWrite ? h('section', { 'aria-label': 'Upload' }, zone, uploads) : '', list);
  list.append(h('p', { class: 'muted' }, 'Loading…'));
  refresh();
}

// ---- viewer ----------------------------------------------------------------------------

async function viewer(documentId, query) {
  render('Document', h('p', { class: 'muted' }, 'Loading…'));
  let doc;
  let text;
  try {
    [doc, text] = await Promise.all([
      api.get(api.tenantPath(`/documents/${encodeURIComponent(documentId)}`)),
      api.get(api.tenantPath(`/documents/${encodeURIComponent(documentId)}/text`)),
    ]);
  } catch (error) {
    render('Document', errorBox(error), h('p', {}, h('a', { href: '#/documents' }, 'Back to documents')));
    return;
  }
  const catalogue = doc.catalogue || {};
  const facts = [
    ['Parties', (catalogue.parties || []).map((p) => p.name).join('; ')],
    ['Agreement date', catalogue.agreement_date],
    ['Effective', catalogue.effective_date],
    ['Expires', catalogue.expiration_date],
    ['Governing law', catalogue.governing_law],
  ].filter(([, value]) => value);
  // Offsets count Unicode characters (code points), not UTF-16 units.
  const chars = Array.from(text.text);
  const start = Number.parseInt(query.get('start'), 10);
  const end = Number.parseInt(query.get('end'), 10);
  const body = h('div', { class: 'document-text', id: 'document-text', tabindex: '0', 'aria-label': 'Extracted text' });
  let mark = null;
  if (Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end > start && start < chars.length) {
    mark = h('mark', { id: 'cited', tabindex: '-1', 'aria-label': 'Cited passage' }, chars.slice(start, end).join(''));
    body.append(chars.slice(0, start).join(''), mark, chars.slice(end).join(''));
  } else {
    body.append(text.text);
  }
  const layout = h('div', { class: 'viewer' },
    body,
    h('aside', { class: 'viewer-side', 'aria-label': 'About this document' },
      mark ? h('p', { class: 'cited-note' }, h('a', { href: '#cited', onclick: (event) => {
        event.preventDefault();
        mark.scrollIntoView({ block: 'center' });
        mark.focus({ preventScroll: true });
      } }, 'Cited passage'), ' highlighted in the text.') : '',
      mark ? originalPage(documentId, doc, text.page_starts, start, () => layout.classList.add('with-page')) : '',
      catalogue.summary ? h('p', { class: 'summary' }, catalogue.summary) : '',
      facts.length ? h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])) : ''));
  render(catalogue.title || doc.filename,
    h('p', { class: 'muted' }, `${doc.filename} · ${bytes(doc.bytes)} · added ${when(doc.created_at)} · `,
      h('a', { href: '#/documents' }, 'All documents')),
    layout);
  if (mark) {
    mark.scrollIntoView({ block: 'center' });
    mark.focus({ preventScroll: true });
  }
}

// The original page a cited passage is on, for a pdf whose pages the appliance recorded:
// the original is fetched with the token (never a URL that carries it), shown from a blob:
// URL in the browser's own PDF viewer at `#page=N`, and released on leaving the page.
function originalPage(documentId, doc, pageStarts, start, opened) {
  if (doc.content_type !== 'application/pdf' || !Array.isArray(pageStarts) || !pageStarts.length) return '';
  let page = 1;
  pageStarts.forEach((offset, index) => { if (offset <= start) page = index + 1; });
  const holder = h('div', { class: 'page-view' });
  const button = h('button', {
    type: 'button', class: 'small', id: 'show-page',
    onclick: async () => {
      button.disabled = true;
      try {
        const original = await api.request('GET', api.tenantPath(`/documents/${encodeURIComponent(documentId)}/content`), undefined, 'blob');
        const url = URL.createObjectURL(new Blob([original], { type: 'application/pdf' }));
        window.addEventListener('hashchange', () => URL.revokeObjectURL(url), { once: true });
        holder.replaceChildren(h('iframe', {
          src: `${url}#page=${page}`, id: 'original-page', class: 'original-page',
          title: `Page ${page} of the original PDF`, 'data-page': String(page),
        }));
        button.remove();
        opened();
      } catch (error) {
        holder.replaceChildren(errorBox(error));
        button.disabled = false;
      }
    },
  }, `Show page ${page} of the original`);
  return h('div', { class: 'page-section' },
    h('p', { class: 'muted small' }, `The cited passage is on page ${page} of the original PDF.`),
    button, holder);
}

// ---- ask -------------------------------------------------------------------------------

function history() {
  try {
    return JSON.parse(sessionStorage.getItem(HISTORY) || '[]');
  } catch {
    return [];
  }
}

export function ask() {
  const field = h('textarea', { id: 'question', rows: '3', required: true, maxlength: '2000', placeholder: 'e.g. Which state’s laws govern the endorsement agreement?' });
  const answer = h('div', { class: 'answer', id: 'answer', 'aria-live': 'polite', 'aria-busy': 'false' });
  const citations = h('div', { id: 'citations' });
  const past = h('ol', { class: 'history' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Ask');

  function showHistory() {
    const items = history();
    past.replaceChildren(...items.map((question) => h('li', {}, h('button', {
      type: 'button', class: 'link', onclick: () => { field.value = question; field.focus(); },
    }, question))));
  }

  async function submit(event) {
    event.preventDefault();
    const question = field.value.trim();
    if (!question) return;
    sessionStorage.setItem(HISTORY, JSON.stringify([question, ...history().filter((q) => q !== question)].slice(0, 20)));
    showHistory();
    button.disabled = true;
    answer.setAttribute('aria-busy', 'true');
    const text = h('p', { class: 'answer-text' });
    const status = h('p', { class: 'muted small' }, 'Reading the contracts and checking each sentence against them…');
    answer.replaceChildren(text, status);
    citations.replaceChildren();
    try {
      await api.askStream(question, (name, data) => {
        if (name === 'token') text.append(data.text);
        if (name === 'done') {
          text.textContent = data.answer;
          status.textContent = data.grounded
            ? `Answered from ${data.citations.length} cited passage${data.citations.length === 1 ? '' : 's'} in ${(data.timings_ms.total / 1000).toFixed(1)} s.`
            : 'No answer supported by the documents was found.';
          status.className = data.grounded ? 'muted small' : 'warning';
          citations.replaceChildren(citationList(data.citations));
        }
      });
    } catch (error) {
      answer.replaceChildren(errorBox(error));
    } finally {
      button.disabled = false;
      answer.setAttribute('aria-busy', 'false');
    }
  }

  render('Ask',
    h('div', { class: 'columns' },
      h('div', { class: 'primary-column' },
        h('form', { class: 'card', onsubmit: submit },
          h('label', { for: 'question' }, 'Your question about the contracts'),
          field,
          h('div', { class: 'row' }, button, h('span', { class: 'muted small' }, 'Answers quote only your documents and cite them.'))),
        answer, citations),
      h('aside', { class: 'side', 'aria-label': 'Questions asked in this session' },
        h('h2', {}, 'This session'), past)));
  showHistory();
  field.focus();
}

function citationList(list) {
  if (!list.length) return '';
  return h('section', { class: 'citations', 'aria-label': 'Citations' },
    h('h2', {}, 'Sources'),
    h('ol', {}, list.map((c, i) => h('li', {},
      h('blockquote', {}, c.text),
      viewerLink(c.document_id, c.start, c.end, `[${i + 1}] ${c.filename} — open at this passage`)))));
}

// ---- search ----------------------------------------------------------------------------

export function search() {
  const field = h('input', { id: 'query', type: 'search', required: true });
  const results = h('div', { 'aria-live': 'polite' });
  const modes = [['hybrid', 'Hybrid'], ['vector', 'Meaning (vector)'], ['keyword', 'Keyword']];
  const switcher = h('fieldset', { class: 'modes' }, h('legend', {}, 'Mode'),
    modes.map(([value, label], i) => h('label', { class: 'mode' },
      h('input', { type: 'radio', name: 'mode', value, checked: i === 0 }), ` ${label}`)));

  async function submit(event) {
    event.preventDefault();
    const mode = switcher.querySelector('input:checked').value;
    results.replaceChildren(h('p', { class: 'muted' }, 'Searching…'));
    try {
      const body = await api.post(api.tenantPath('/search'), { query: field.value, mode, top_k: 10 });
      results.replaceChildren(body.results.length
        ? h('ol', { class: 'results' }, body.results.map((r) => h('li', {},
          h('div', { class: 'row' }, viewerLink(r.document_id, r.start, r.end, r.filename),
            h('span', { class: 'muted small' }, `score ${r.score.toFixed(3)}`)),
          h('p', {}, r.text))))
        : h('p', { class: 'empty' }, 'Nothing matched.'));
    } catch (error) {
      results.replaceChildren(errorBox(error));
    }
  }

  render('Search',
    h('form', { class: 'card', onsubmit: submit },
      h('label', { for: 'query' }, 'Search the contracts'),
      h('div', { class: 'row' }, field, h('button', { type: 'submit', class: 'primary' }, 'Search')),
      switcher),
    results);
  field.focus();
}
