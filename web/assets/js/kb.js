// Knowledge bases: the list, and one KB's documents (upload, status, enable, delete),
// chunks (browse, edit, delete), hit testing and settings. Routes:
//   #/kbs                         the list
//   #/kbs/{id}[/{tab}[/{doc}]]    one KB; tab = documents | chunks | hit | settings, and the
//                                 chunks tab may name the document to open.

import { api } from './api.js';
import { t } from './i18n.js';
import { confirmDialog, empty, errorText, failure, field, formatBytes, formatTime, h, modal, mount, toast } from './ui.js';

const TABS = ['documents', 'chunks', 'hit', 'settings'];
const TYPES = 'PDF, Word (docx), Excel (xlsx), PowerPoint (pptx), CSV, HTML, Markdown, TXT, PNG/JPEG/TIFF/WebP/BMP (OCR)';
const ACCEPT = '.pdf,.docx,.xlsx,.pptx,.doc,.xls,.odt,.ods,.epub,.csv,.json,.jsonl,.html,.htm,.md,.markdown,.txt,.png,.jpg,.jpeg,.tif,.tiff,.webp,.bmp';
const CHUNK_PAGE = 20;
const PREVIEW_SHOWN = 200;
// Hit-testing form and last answer per KB, so switching tabs and back keeps them.
const hitMemory = new Map();

const enc = encodeURIComponent;
const kbPath = (kb) => '/api/kbs/' + enc(kb.id);
const kbHash = (kb, tab, doc) => '#/kbs/' + enc(kb.id) + (tab ? '/' + tab : '') + (doc ? '/' + enc(doc) : '');
const aborted = (err) => err && err.name === 'AbortError';
const loading = (text) => h('div.empty', { role: 'status' }, h('span.spinner'), ' ', text || t('common.loading'));
const num = (n, digits) => (n === null || n === undefined ? '—' : Number(n).toFixed(digits));

/** Everything a page started — requests, timers, listeners — ends with it. */
function scope() {
  const controller = new AbortController();
  const timers = new Set();
  const ends = [];
  const s = {
    alive: true,
    signal: controller.signal,
    later(fn, ms) {
      const id = setTimeout(() => { timers.delete(id); if (s.alive) fn(); }, ms);
      timers.add(id);
      return id;
    },
    cancel(id) { if (id) { clearTimeout(id); timers.delete(id); } },
    onEnd(fn) { ends.push(fn); },
    end() {
      s.alive = false;
      controller.abort();
      for (const id of timers) clearTimeout(id);
      timers.clear();
      for (const fn of ends.splice(0)) fn();
    },
  };
  return s;
}

/** Run fn over items, at most n at a time. */
async function pool(items, n, fn) {
  let next = 0;
  const worker = async () => { while (next < items.length) { const i = next++; await fn(items[i], i); } };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

/** Text with every (case-insensitive) occurrence of q wrapped in <mark>. */
function highlight(text, q) {
  if (!q) return text;
  const out = [];
  const lower = text.toLowerCase();
  const needle = q.toLowerCase();
  let at = 0;
  for (let i = lower.indexOf(needle); i >= 0 && needle; i = lower.indexOf(needle, at)) {
    out.push(text.slice(at, i), h('mark.hl', text.slice(i, i + needle.length)));
    at = i + needle.length;
  }
  out.push(text.slice(at));
  return out;
}

// ---------------------------------------------------------------------------------------
// The list

function renderList(main) {
  const s = scope();
  const head = h('div.page-head', h('div.grow', h('h1', t('kb.title')), h('p.muted', t('kb.subtitle'))));
  const body = h('div');
  mount(main, head, body);
  // Exactly one create button at a time (the header's, or the empty state's), so the
  // 'kb-create' test hook is never ambiguous.
  const createButton = () => h('button.btn.btn-primary', { type: 'button', 'data-testid': 'kb-create', onclick: openCreate }, '+ ' + t('kb.create'));

  async function load() {
    mount(body, loading());
    head.querySelector('[data-testid="kb-create"]')?.remove();
    try {
      const kbs = await api.get('/api/kbs', { signal: s.signal });
      if (!s.alive) return;
      if (!kbs.length) {
        mount(body, h('div.panel', empty(t('kb.empty'), createButton())));
        return;
      }
      head.append(createButton());
      mount(body, h('div.cards', kbs.map(kbCard)));
    } catch (err) {
      if (s.alive && !aborted(err)) mount(body, failure(err, load));
    }
  }
  load();
  return () => s.end();
}

function kbCard(kb) {
  return h('a.card', { href: kbHash(kb), 'data-testid': 'kb-card', dataset: { id: kb.id, name: kb.name } },
    h('div.card-title', h('span.avatar', [...kb.name.trim()][0] || '知'), h('span.break', kb.name)),
    h('div.card-desc.break', kb.description || t('kb.noDescription')),
    h('div.card-meta',
      h('span', t('kb.docCount', { n: kb.document_count })),
      h('span', t('kb.chunkCount', { n: kb.chunk_count })),
      h('span.break', { title: t('kb.model', { model: kb.embedding_model }) }, kb.embedding_model)));
}

function openCreate() {
  const name = h('input.input', { type: 'text', maxlength: '100', autocomplete: 'off', required: true });
  const description = h('textarea.textarea', { rows: '3', maxlength: '2000' });
  const error = h('p.form-error', { role: 'alert' });
  const m = modal({
    title: t('kb.create'),
    body: [field(t('common.name'), name), field(t('common.description'), description, t('kb.descHint')), error],
    actions: [
      { label: t('common.cancel') },
      {
        label: t('common.create'),
        kind: 'primary',
        onClick: async () => {
          const value = name.value.trim();
          if (!value) {
            error.textContent = t('kb.nameRequired');
            name.focus();
            return true;
          }
          try {
            const kb = await api.post('/api/kbs', { name: value, description: description.value.trim() });
            toast(t('kb.created'), 'success');
            location.hash = kbHash(kb);
            return false;
          } catch (err) {
            error.textContent = err.code === 'conflict' ? t('kb.nameTaken', { name: value }) : errorText(err);
            return true;
          }
        },
      },
    ],
  });
  submitOnEnter(name, m);
}

/** Enter in a one-line input presses the dialog's primary button (not mid-IME). */
function submitOnEnter(input, m) {
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.isComposing) {
      e.preventDefault();
      m.element.querySelector('.modal-actions .btn-primary')?.click();
    }
  });
}

// ---------------------------------------------------------------------------------------
// One knowledge base

function renderKb(main, match) {
  const s = scope();
  const id = decodeURIComponent(match[1]);
  const tab = match[2] || 'documents';
  const docParam = match[3] ? decodeURIComponent(match[3]) : null;
  let header = null;

  async function load() {
    mount(main, loading());
    try {
      const kb = await api.get('/api/kbs/' + enc(id), { signal: s.signal });
      if (!s.alive) return;
      draw(kb);
    } catch (err) {
      if (!s.alive || aborted(err)) return;
      const back = h('a.btn', { href: '#/kbs' }, '← ' + t('kb.backToList'));
      if (err.status === 404) mount(main, h('div.panel', empty(t('kb.notFound'), back)));
      else mount(main, h('div.stack', failure(err, load), h('div', back)));
    }
  }

  /** Re-read the KB (counts change as documents finish) or take a fresh copy. */
  async function refreshKb(fresh) {
    try {
      const kb = fresh || await api.get('/api/kbs/' + enc(id), { signal: s.signal });
      if (s.alive && header) header.update(kb);
      return kb;
    } catch (err) {
      if (s.alive && !aborted(err)) toast(errorText(err), 'error');
      return null;
    }
  }

  function draw(kb) {
    header = kbHeader(kb);
    const tabs = h('nav.tabs', { role: 'tablist', 'aria-label': kb.name }, TABS.map((key) => h('a.tab', {
      href: kbHash(kb, key),
      role: 'tab',
      class: key === tab ? 'active' : '',
      'aria-selected': key === tab ? 'true' : 'false',
      'data-testid': 'kb-tab-' + key,
    }, t('kb.tab.' + key))));
    const panel = h('div.kb-panel', { role: 'tabpanel' });
    mount(main, header.element, tabs, panel);
    const context = { kb, s, panel, refreshKb, docParam };
    ({ documents: documentsTab, chunks: chunksTab, hit: hitTab, settings: settingsTab })[tab](context);
  }

  load();
  return () => s.end();
}

function kbHeader(kb) {
  const title = h('h1.break');
  const desc = h('p.muted.break.kb-desc');
  const meta = h('div.kb-meta');
  const element = h('div.kb-head',
    h('nav.breadcrumb', { 'aria-label': 'breadcrumb' }, h('a', { href: '#/kbs' }, t('kb.title')), h('span', '›'), h('span.break.kb-crumb')),
    h('div.page-head.kb-title-row', h('span.avatar.kb-avatar'), h('div.grow', title, desc, meta)));
  function update(next) {
    title.textContent = next.name;
    element.querySelector('.kb-crumb').textContent = next.name;
    element.querySelector('.kb-avatar').textContent = [...next.name.trim()][0] || '知';
    desc.textContent = next.description || '';
    desc.classList.toggle('hidden', !next.description);
    mount(meta,
      h('span', t('kb.docCount', { n: next.document_count })),
      h('span', t('kb.chunkCount', { n: next.chunk_count })),
      h('span.faint.break', t('kb.model', { model: next.embedding_model })));
  }
  update(kb);
  return { element, update };
}

// ---------------------------------------------------------------------------------------
// Split settings (documents tab and settings tab)

/** Show a stored separator as typed: real newlines and tabs as \n and \t escapes. */
const escapeSeparator = (sep) => sep.replaceAll('\n', '\\n').replaceAll('\t', '\\t').replaceAll('\r', '\\r');
let splitEditors = 0;

function splitEditor(initial) {
  const custom = initial && initial.mode === 'custom';
  const group = 'split-mode-' + (++splitEditors);
  const auto = h('input', { type: 'radio', name: group, value: 'auto', checked: !custom });
  const manual = h('input', { type: 'radio', name: group, value: 'custom', checked: custom });
  const separator = h('input.input', { type: 'text', value: custom ? escapeSeparator(initial.separator) : '\\n\\n', autocomplete: 'off' });
  const max = h('input.input', { type: 'number', min: '16', max: '500', step: '1', value: String(custom ? initial.max_tokens : 256) });
  const overlap = h('input.input', { type: 'number', min: '0', max: '250', step: '1', value: String(custom ? (initial.overlap_tokens ?? 0) : 32) });
  const fields = h('div.grid-3.split-custom',
    field(t('kb.split.separator'), separator, t('kb.split.separatorHint')),
    field(t('kb.split.maxTokens'), max, t('kb.split.maxHint')),
    field(t('kb.split.overlap'), overlap, t('kb.split.overlapHint')));
  const sync = () => fields.classList.toggle('hidden', !manual.checked);
  auto.addEventListener('change', sync);
  manual.addEventListener('change', sync);
  sync();
  const element = h('fieldset.split-settings',
    h('legend', t('kb.split.legend')),
    h('div.split-options',
      h('label.split-option', auto, h('span', h('strong', t('kb.split.auto')), h('span.field-hint', t('kb.split.autoHint')))),
      h('label.split-option', manual, h('span', h('strong', t('kb.split.custom')), h('span.field-hint', t('kb.split.customHint'))))),
    fields);
  return {
    element,
    /** The settings as the API takes them; throws an Error with words when a number is off. */
    value() {
      if (!manual.checked) return { mode: 'auto' };
      const sep = separator.value;
      const maxTokens = Number(max.value);
      const overlapTokens = overlap.value.trim() === '' ? 0 : Number(overlap.value);
      if (!sep) { separator.focus(); throw new Error(t('kb.split.errSeparator')); }
      if (!Number.isInteger(maxTokens) || maxTokens < 16 || maxTokens > 500) { max.focus(); throw new Error(t('kb.split.errMax')); }
      const half = Math.floor(maxTokens / 2);
      if (!Number.isInteger(overlapTokens) || overlapTokens < 0 || overlapTokens > half) {
        overlap.focus();
        throw new Error(t('kb.split.errOverlap', { max: half }));
      }
      return { mode: 'custom', separator: sep, max_tokens: maxTokens, overlap_tokens: overlapTokens };
    },
  };
}

const splitLabel = (split) => (split.mode === 'custom'
  ? `${t('kb.split.custom')} · ${split.separator} · ≤${split.max_tokens} · ${split.overlap_tokens}`
  : t('kb.split.auto'));

/** A chunk as read-only preview. */
function previewChunk(c) {
  return h('div.chunk',
    h('div.chunk-head',
      h('strong', '#' + (c.ordinal + 1)),
      c.page != null ? h('span', t('kb.page', { n: c.page })) : null,
      h('span', t('kb.tokens', { n: c.token_count })),
      h('span', t('kb.chars', { n: [...c.text].length }))),
    h('div.chunk-text', c.text));
}

// ---------------------------------------------------------------------------------------
// Documents tab

function statusBadge(d) {
  const kind = { queued: '', processing: '.badge-info', indexed: '.badge-success', failed: '.badge-error' }[d.status] ?? '';
  return h('span.badge' + kind, d.status === 'processing' || d.status === 'queued' ? h('span.spinner.spinner-small') : null,
    t('kb.status.' + d.status) === 'kb.status.' + d.status ? d.status : t('kb.status.' + d.status));
}

function statusCell(d) {
  const parts = [statusBadge(d)];
  if (d.status === 'processing') {
    const pct = Math.round(Math.max(0, Math.min(1, d.progress ?? 0)) * 100);
    const stage = d.stage ? (t('kb.stage.' + d.stage) === 'kb.stage.' + d.stage ? d.stage : t('kb.stage.' + d.stage)) : '';
    // The job's estimate of the embedding time left, once it has one.
    const eta = d.eta_seconds == null ? '' : t('kb.eta', { time: d.eta_seconds >= 90 ? Math.round(d.eta_seconds / 60) + ' min' : Math.max(1, Math.round(d.eta_seconds)) + ' s' });
    parts.push(h('div.small.muted.doc-stage', [stage, pct + '%', eta].filter(Boolean).join(' · ')),
      h('div.progress', { role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(pct) }, h('span', { style: { width: pct + '%' } })));
  }
  if (d.status === 'failed') {
    const message = d.error ? (d.error.message || d.error.code) : '';
    parts.push(h('p.doc-error', { 'data-testid': 'doc-error' }, t('kb.failedReason', { message: message || '—' })));
  }
  return parts;
}

function documentsTab({ kb, s, panel, refreshKb }) {
  const path = kbPath(kb) + '/documents';
  const split = splitEditor(kb.split);
  const input = h('input.hidden', {
    type: 'file', multiple: true, accept: ACCEPT, 'data-testid': 'upload-input', 'aria-label': t('kb.drop.label'),
    onchange: () => {
      const files = [...input.files];
      input.value = '';
      if (files.length) uploadFiles(files);
    },
  });
  const previewInput = h('input.hidden', {
    type: 'file', multiple: true, accept: ACCEPT, 'aria-label': t('kb.previewPick'),
    onchange: () => {
      const files = [...previewInput.files];
      previewInput.value = '';
      if (files.length) openPreview({ file: files[0], name: files[0].name }, files);
    },
  });
  const zone = h('div.dropzone', {
    'data-testid': 'dropzone', role: 'button', tabindex: '0', 'aria-label': t('kb.drop.label'),
    onclick: () => input.click(),
    onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); } },
    ondragenter: (e) => { e.preventDefault(); zone.classList.add('over'); },
    ondragover: (e) => { e.preventDefault(); if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy'; zone.classList.add('over'); },
    ondragleave: (e) => { if (!zone.contains(e.relatedTarget)) zone.classList.remove('over'); },
    ondrop: (e) => {
      e.preventDefault();
      zone.classList.remove('over');
      const files = [...(e.dataTransfer?.files || [])];
      if (files.length) uploadFiles(files);
    },
  }, h('span.dropzone-icon', { 'aria-hidden': 'true' }, '↑'), h('strong', t('kb.drop.title')), h('span.small', t('kb.drop.hint', { types: TYPES })));
  // A file dropped just beside the zone would otherwise make the browser open it and
  // leave the workspace.
  const guardDrop = (e) => { if (e.dataTransfer && [...e.dataTransfer.types].includes('Files')) e.preventDefault(); };
  document.addEventListener('dragover', guardDrop);
  document.addEventListener('drop', guardDrop);
  s.onEnd(() => {
    document.removeEventListener('dragover', guardDrop);
    document.removeEventListener('drop', guardDrop);
  });

  const uploadList = h('ul.upload-list');
  const uploadBox = h('div.upload-box.hidden',
    h('div.row', h('h3.grow', t('kb.uploads.title')),
      h('button.link-btn', { type: 'button', onclick: () => { uploadList.replaceChildren(); uploadBox.classList.add('hidden'); } }, t('kb.uploads.clear'))),
    uploadList);

  const uploadPanel = h('section.panel.upload-panel',
    h('div.panel-head', h('h2', t('kb.upload.title')),
      h('button.btn.btn-small', { type: 'button', onclick: () => previewInput.click() }, t('kb.preview')),
      h('button.btn.btn-small', { type: 'button', onclick: openPaste }, t('kb.paste'))),
    zone, input, previewInput, split.element, uploadBox);

  const countLabel = h('span.muted.small');
  const pollError = h('div.alert.alert-warning.hidden', { role: 'status' });
  const docsBox = h('div');
  const tbody = h('tbody');
  const table = h('div.table-wrap', h('table.table.doc-table',
    h('thead', h('tr',
      h('th', t('kb.docs.name')), h('th', t('kb.docs.status')), h('th', t('kb.docs.chunks')),
      h('th', t('kb.docs.size')), h('th', t('kb.docs.enabled')), h('th', h('span.sr-only', t('common.actions'))))),
    tbody));
  mount(panel, uploadPanel, h('section.panel',
    h('div.panel-head', h('h2', t('kb.docs.title')), countLabel), pollError, docsBox));

  // Rows are kept by document id and rebuilt only when that document changed, so a
  // poll every second does not steal focus from a switch or button in another row.
  const rows = new Map();
  let loadSeq = 0;
  let pollTimer = null;
  let wasBusy = false;

  function settings() {
    try {
      return split.value();
    } catch (err) {
      toast(err.message, 'error');
      return null;
    }
  }

  async function loadDocs(quiet) {
    const seq = ++loadSeq;
    if (!quiet) mount(docsBox, loading());
    try {
      const docs = await api.get(path + '?limit=1000', { signal: s.signal });
      if (!s.alive || seq !== loadSeq) return;
      pollError.classList.add('hidden');
      showDocs(docs);
      const busy = docs.some((d) => d.status === 'queued' || d.status === 'processing');
      s.cancel(pollTimer);
      pollTimer = busy ? s.later(() => loadDocs(true), 1000) : null;
      if (wasBusy && !busy) refreshKb();
      wasBusy = busy;
    } catch (err) {
      if (!s.alive || aborted(err) || seq !== loadSeq) return;
      if (quiet && docsBox.querySelector('table')) {
        pollError.textContent = t('kb.docs.pollFailed', { message: err.message });
        pollError.classList.remove('hidden');
        s.cancel(pollTimer);
        pollTimer = s.later(() => loadDocs(true), 3000);
      } else {
        mount(docsBox, failure(err, () => loadDocs()));
      }
    }
  }

  function showDocs(docs) {
    countLabel.textContent = docs.length ? t('kb.docs.count', { n: docs.length }) : '';
    if (!docs.length) {
      rows.clear();
      tbody.replaceChildren();
      mount(docsBox, empty(t('kb.docs.empty')));
      return;
    }
    if (table.parentNode !== docsBox) mount(docsBox, table);
    const seen = new Set();
    docs.forEach((d, i) => {
      seen.add(d.id);
      const key = JSON.stringify(d);
      let entry = rows.get(d.id);
      if (!entry || entry.key !== key) {
        const tr = docRow(d);
        if (entry) entry.tr.replaceWith(tr);
        entry = { key, tr };
        rows.set(d.id, entry);
      }
      if (tbody.children[i] !== entry.tr) tbody.insertBefore(entry.tr, tbody.children[i] || null);
    });
    for (const [docId, entry] of rows) {
      if (!seen.has(docId)) { entry.tr.remove(); rows.delete(docId); }
    }
  }

  function docRow(d) {
    const toggle = h('input.switch', {
      type: 'checkbox', role: 'switch', checked: d.enabled, 'aria-label': t('kb.docs.enableLabel', { name: d.name }),
      onchange: async () => {
        const enabled = toggle.checked;
        toggle.disabled = true;
        try {
          const updated = await api.patch(path + '/' + enc(d.id), { enabled });
          if (!s.alive) return;
          // Remember the new state so the next poll keeps this row (and its focus).
          const entry = rows.get(d.id);
          if (entry) entry.key = JSON.stringify(updated);
          Object.assign(d, updated);
          toast(t(enabled ? 'kb.docs.enabledOn' : 'kb.docs.enabledOff', { name: d.name }), 'success');
        } catch (err) {
          if (!s.alive || aborted(err)) return;
          toggle.checked = !enabled;
          toast(errorText(err), 'error');
        } finally {
          toggle.disabled = false;
        }
      },
    });
    const chunks = d.status === 'indexed'
      ? h('a', { href: kbHash(kb, 'chunks', d.id), title: t('kb.docs.viewChunks', { name: d.name }), 'aria-label': t('kb.docs.viewChunks', { name: d.name }) }, String(d.chunk_count))
      : h('span.faint', '—');
    return h('tr', { 'data-testid': 'doc-row', dataset: { status: d.status, name: d.name, id: d.id } },
      h('td.name', h('div.doc-name.break', d.name),
        d.pages ? h('div.small.faint', t('kb.docs.pages', { n: d.pages })) : null),
      h('td.doc-status', statusCell(d)),
      h('td.nowrap', { 'data-label': t('kb.docs.chunks') }, chunks),
      h('td.nowrap', { 'data-label': t('kb.docs.size') }, formatBytes(d.bytes)),
      h('td', { 'data-label': t('kb.docs.enabled') }, toggle),
      h('td.nowrap.doc-actions', h('button.link-btn.danger', { type: 'button', onclick: () => removeDoc(d) }, t('common.delete'))));
  }

  async function removeDoc(d) {
    if (!await confirmDialog(t('common.confirmDelete', { name: d.name }))) return;
    try {
      await api.del(path + '/' + enc(d.id));
      if (!s.alive) return;
      toast(t('kb.docs.deleted', { name: d.name }), 'success');
      loadDocs(true);
      refreshKb();
    } catch (err) {
      if (s.alive && !aborted(err)) toast(errorText(err), 'error');
    }
  }

  /** One line per file in "this upload", updated as its request settles. */
  function uploadItem(name, bytes) {
    const status = h('span.upload-status', h('span.spinner.spinner-small'), ' ', t('kb.upload.sending'));
    const item = h('li.upload-item', { 'data-testid': 'upload-result', dataset: { name, state: 'uploading' } },
      h('span.upload-name.break', name), bytes != null ? h('span.faint.small.nowrap', formatBytes(bytes)) : null, status);
    uploadList.append(item);
    uploadBox.classList.remove('hidden');
    return (state, text) => {
      item.dataset.state = state;
      status.className = 'upload-status upload-' + state;
      status.textContent = text;
    };
  }

  function settle(set, outcome) {
    if (outcome.duplicate) {
      const existing = t('kb.status.' + outcome.status) === 'kb.status.' + outcome.status ? outcome.status : t('kb.status.' + outcome.status);
      set('duplicate', t('kb.upload.duplicate', { status: existing }));
    } else {
      set('queued', t('kb.upload.queued'));
    }
  }

  function uploadError(err) {
    if (err.status === 413 || err.code === 'payload_too_large') {
      const limit = /(\d+)\s*bytes/.exec(err.message || '');
      return limit ? t('kb.upload.tooLarge', { limit: formatBytes(Number(limit[1])) }) : t('kb.upload.tooLargeNoLimit');
    }
    if (err.status === 415 || err.code === 'unsupported_type') return t('kb.upload.unsupported', { types: TYPES });
    if (err.code === 'network') return t('kb.upload.network');
    if (err.code === 'unauthorized') return errorText(err);
    return t('kb.upload.failed', { message: err.message });
  }

  // One request per file: the server turns a whole batch down when one file is
  // unreadable, and a person needs to know which file went wrong and why.
  async function uploadFiles(files, chosen) {
    const splitSettings = chosen || settings();
    if (!splitSettings) return;
    await pool(files, 3, async (file) => {
      const set = uploadItem(file.name, file.size);
      try {
        const result = await api.upload(path, [file], { split: splitSettings }, { signal: s.signal });
        if (!s.alive) return;
        settle(set, result.documents[0]);
        loadDocs(true);
      } catch (err) {
        if (!s.alive || aborted(err)) return;
        set('error', uploadError(err));
      }
    });
  }

  async function uploadText(name, text, splitSettings) {
    const set = uploadItem(name || 'pasted.txt', new Blob([text]).size);
    try {
      const body = { text, split: splitSettings };
      if (name) body.name = name;
      const result = await api.post(path, body, { signal: s.signal });
      if (!s.alive) return;
      settle(set, result.documents[0]);
      loadDocs(true);
    } catch (err) {
      if (!s.alive || aborted(err)) return;
      set('error', uploadError(err));
    }
  }

  /** Preview how one file (or text) would be split; the dialog offers to upload it so. */
  function openPreview(source, files) {
    const splitSettings = settings();
    if (!splitSettings) return;
    const body = h('div.stack', loading());
    const actions = [{ label: t('common.close') }];
    if (files) {
      actions.push({
        label: files.length > 1 ? t('kb.preview.uploadMany', { n: files.length }) : t('kb.preview.uploadOne'),
        kind: 'primary',
        onClick: () => { uploadFiles(files, splitSettings); },
      });
    } else if (source.onUpload) {
      actions.push({ label: t('kb.preview.uploadOne'), kind: 'primary', onClick: () => source.onUpload(splitSettings) });
    }
    modal({ title: t('kb.preview.title', { name: source.name || 'pasted.txt' }), body, actions, wide: true });
    const previewPath = kbPath(kb) + '/split-preview';
    const run = async () => {
      mount(body, loading());
      try {
        const result = source.file
          ? await api.upload(previewPath, [source.file], { split: splitSettings }, { signal: s.signal })
          : await api.post(previewPath, { name: source.name || undefined, text: source.text, split: splitSettings }, { signal: s.signal });
        if (!s.alive) return;
        const shown = result.chunks.slice(0, PREVIEW_SHOWN);
        mount(body,
          h('p.muted', t('kb.preview.summary', { n: result.total, mode: splitLabel(splitSettings) })),
          files && files.length > 1 ? h('p.alert.alert-info', t('kb.preview.onlyFirst', { n: files.length - 1 })) : null,
          result.total ? h('div.preview-chunks', shown.map(previewChunk)) : empty(t('kb.preview.none')),
          result.total > shown.length ? h('p.faint.small', t('kb.preview.more', { shown: shown.length, n: result.total })) : null);
      } catch (err) {
        if (!s.alive || aborted(err)) return;
        mount(body, failure(source.file ? { ...err, message: uploadError(err), code: 'preview' } : err, run));
      }
    };
    run();
  }

  function openPaste() {
    const name = h('input.input', { type: 'text', maxlength: '200', placeholder: t('kb.paste.namePlaceholder'), autocomplete: 'off' });
    const text = h('textarea.textarea.paste-text', { rows: '12' });
    const error = h('p.form-error', { role: 'alert' });
    const read = () => {
      if (!text.value.trim()) {
        error.textContent = t('kb.paste.empty');
        text.focus();
        return null;
      }
      error.textContent = '';
      return { name: name.value.trim(), text: text.value };
    };
    modal({
      title: t('kb.paste.title'),
      wide: true,
      body: [field(t('kb.paste.name'), name, t('kb.paste.nameHint')), field(t('kb.paste.text'), text), error],
      actions: [
        { label: t('common.cancel') },
        {
          label: t('kb.preview'),
          onClick: (close) => {
            const value = read();
            if (value) {
              openPreview({ ...value, onUpload: (chosen) => { close(); uploadText(value.name, value.text, chosen); } });
            }
            return true;
          },
        },
        {
          label: t('kb.paste.add'),
          kind: 'primary',
          onClick: () => {
            const value = read();
            if (!value) return true;
            const chosen = settings();
            if (!chosen) return true;
            uploadText(value.name, value.text, chosen);
            return false;
          },
        },
      ],
    });
  }

  loadDocs();
}

// ---------------------------------------------------------------------------------------
// Chunks tab

function chunksTab({ kb, s, panel, docParam }) {
  const body = h('div');
  mount(panel, h('section.panel', body));

  async function start() {
    mount(body, loading());
    let docs;
    try {
      docs = await api.get(kbPath(kb) + '/documents?limit=1000', { signal: s.signal });
    } catch (err) {
      if (s.alive && !aborted(err)) mount(body, failure(err, start));
      return;
    }
    if (!s.alive) return;
    if (!docs.length) {
      mount(body, empty(t('kb.chunks.noDocs'), h('a.btn', { href: kbHash(kb, 'documents') }, t('kb.tab.documents'))));
      return;
    }
    browse(docs);
  }

  function browse(docs) {
    const initial = docs.find((d) => d.id === docParam) || docs.find((d) => d.status === 'indexed') || docs[0];
    const select = h('select.select', { 'data-testid': 'chunk-doc' }, docs.map((d) => h('option', { value: d.id, selected: d.id === initial.id },
      d.status === 'indexed'
        ? t('kb.chunks.docOption', { name: d.name, n: d.chunk_count })
        : t('kb.chunks.docOptionStatus', { name: d.name, status: t('kb.status.' + d.status) }))));
    const search = h('input.input', { type: 'search', placeholder: t('kb.chunks.searchPlaceholder'), 'data-testid': 'chunk-search' });
    const total = h('p.muted.small.chunk-total', { role: 'status' });
    const list = h('div.chunk-list');
    const more = h('button.btn.btn-block.hidden', { type: 'button', onclick: () => load(false) }, t('kb.chunks.more'));
    mount(body,
      h('div.chunk-toolbar', field(t('kb.chunks.doc'), select), field(t('kb.chunks.search'), search)),
      total, list, more);

    let doc = initial;
    let loaded = 0;
    let count = 0;
    let query = '';
    let seq = 0;
    let debounce = null;

    const showTotal = () => { total.textContent = query ? t('kb.chunks.matched', { n: count }) : t('kb.chunks.total', { n: count }); };

    async function load(reset) {
      const mine = ++seq;
      if (reset) {
        loaded = 0;
        mount(list, loading());
        more.classList.add('hidden');
        total.textContent = '';
      } else {
        more.disabled = true;
      }
      const params = new URLSearchParams({ offset: String(loaded), limit: String(CHUNK_PAGE) });
      if (query) params.set('q', query);
      try {
        const page = await api.get(kbPath(kb) + '/documents/' + enc(doc.id) + '/chunks?' + params, { signal: s.signal });
        if (!s.alive || mine !== seq) return;
        if (reset) list.replaceChildren();
        count = page.total;
        loaded += page.chunks.length;
        list.append(...page.chunks.map(chunkEl));
        showTotal();
        if (!count) {
          const why = query ? t('kb.chunks.noMatch', { q: query })
            : doc.status !== 'indexed' ? t('kb.chunks.notIndexed', { status: t('kb.status.' + doc.status) })
              : t('kb.chunks.none');
          mount(list, empty(why));
        }
        more.classList.toggle('hidden', loaded >= count || !page.chunks.length);
      } catch (err) {
        if (!s.alive || aborted(err) || mine !== seq) return;
        if (reset) mount(list, failure(err, () => load(true)));
        else toast(errorText(err), 'error');
      } finally {
        more.disabled = false;
      }
    }

    function chunkEl(c) {
      const el = h('div.chunk', { 'data-testid': 'chunk', dataset: { id: String(c.id) } },
        h('div.chunk-head',
          h('strong', '#' + (c.ordinal + 1)),
          c.page != null ? h('span', t('kb.page', { n: c.page })) : null,
          c.token_count != null ? h('span', t('kb.tokens', { n: c.token_count })) : null,
          h('span', t('kb.chars', { n: [...c.text].length })),
          c.enabled === false ? h('span.badge.badge-warning', t('kb.disabledChunk')) : null,
          h('span.spacer'),
          h('button.link-btn', { type: 'button', onclick: () => edit(c, el) }, t('common.edit')),
          h('button.link-btn.danger', { type: 'button', onclick: () => remove(c, el) }, t('common.delete'))),
        h('div.chunk-text', highlight(c.text, query)));
      return el;
    }

    function edit(c, el) {
      const area = h('textarea.textarea.chunk-edit', { rows: '14' });
      area.value = c.text;
      const error = h('p.form-error', { role: 'alert' });
      modal({
        title: t('kb.chunks.edit', { n: c.ordinal + 1 }),
        wide: true,
        body: [h('p.alert.alert-info', t('kb.chunks.editHint')), area, error],
        actions: [
          { label: t('common.cancel') },
          {
            label: t('common.save'),
            kind: 'primary',
            onClick: async () => {
              const text = area.value;
              if (!text.trim()) {
                error.textContent = t('kb.chunks.emptyText');
                return true;
              }
              try {
                const row = await api.patch(kbPath(kb) + '/documents/' + enc(doc.id) + '/chunks/' + c.id, { text });
                if (el.isConnected) el.replaceWith(chunkEl(row));
                toast(t('kb.chunks.saved'), 'success');
                return false;
              } catch (err) {
                error.textContent = errorText(err);
                return true;
              }
            },
          },
        ],
      });
    }

    async function remove(c, el) {
      if (!await confirmDialog(t('kb.chunks.confirmDelete', { n: c.ordinal + 1 }))) return;
      try {
        await api.del(kbPath(kb) + '/documents/' + enc(doc.id) + '/chunks/' + c.id);
        if (!s.alive) return;
        el.remove();
        count = Math.max(0, count - 1);
        loaded = Math.max(0, loaded - 1);
        showTotal();
        if (!count) load(true);
        toast(t('kb.chunks.deleted'), 'success');
      } catch (err) {
        if (s.alive && !aborted(err)) toast(errorText(err), 'error');
      }
    }

    select.addEventListener('change', () => {
      doc = docs.find((d) => d.id === select.value) || doc;
      // A link to this document's chunks without a new route (replaceState fires no hashchange).
      history.replaceState(null, '', kbHash(kb, 'chunks', doc.id));
      load(true);
    });
    search.addEventListener('input', () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => {
        if (!s.alive || search.value.trim() === query) return;
        query = search.value.trim();
        load(true);
      }, 300);
    });
    search.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.isComposing) {
        clearTimeout(debounce);
        query = search.value.trim();
        load(true);
      }
    });
    s.onEnd(() => clearTimeout(debounce));
    load(true);
  }

  start();
}

// ---------------------------------------------------------------------------------------
// Hit testing tab

const modeHint = (mode) => t({ hybrid: 'kb.hit.hintHybrid', fulltext: 'kb.hit.hintFulltext', semantic: 'kb.hit.hintSemantic' }[mode] || 'kb.hit.hintHybrid');

function hitTab({ kb, s, panel }) {
  const memory = hitMemory.get(kb.id) || { query: '', mode: 'hybrid', top_k: '5', min_score: '', response: null, request: null };
  hitMemory.set(kb.id, memory);

  const query = h('input.input', { type: 'text', 'data-testid': 'hit-query', placeholder: t('kb.hit.queryPlaceholder'), maxlength: '2000', value: memory.query });
  const mode = h('select.select', { 'data-testid': 'hit-mode' },
    ['hybrid', 'fulltext', 'semantic'].map((m) => h('option', { value: m, selected: m === memory.mode }, t('kb.hit.' + m))));
  const topK = h('input.input', { type: 'number', min: '1', max: '100', step: '1', value: memory.top_k, 'data-testid': 'hit-topk' });
  const minScore = h('input.input', { type: 'number', step: 'any', value: memory.min_score, 'data-testid': 'hit-min-score' });
  const hint = h('span.field-hint');
  const error = h('p.form-error', { role: 'alert' });
  const submit = h('button.btn.btn-primary', { type: 'submit', 'data-testid': 'hit-submit' }, t('kb.hit.submit'));
  const results = h('div.hit-results', { 'aria-live': 'polite' });
  const showHint = () => { hint.textContent = modeHint(mode.value); };
  mode.addEventListener('change', showHint);
  showHint();

  const minField = h('label.field', h('span.field-label', t('kb.hit.minScore')), minScore);
  const form = h('form.panel.hit-form', {
    onsubmit: (e) => { e.preventDefault(); run(); },
  },
  h('label.field', h('span.field-label', t('kb.hit.query')), h('div.hit-query-row', query, submit)),
  h('div.grid-3', field(t('kb.hit.mode'), mode), field(t('kb.hit.topK'), topK), minField),
  hint, error);
  mount(panel, form, h('section.panel', results));

  async function run() {
    error.textContent = '';
    const q = query.value.trim();
    const k = Number(topK.value || 5);
    const min = minScore.value.trim();
    if (!q) { error.textContent = t('kb.hit.needQuery'); query.focus(); return; }
    if (!Number.isInteger(k) || k < 1 || k > 100) { error.textContent = t('kb.hit.badTopK'); topK.focus(); return; }
    if (min !== '' && !Number.isFinite(Number(min))) { error.textContent = t('kb.hit.badMin'); minScore.focus(); return; }
    const request = { query: q, mode: mode.value, top_k: k };
    if (min !== '') request.min_score = Number(min);
    Object.assign(memory, { query: query.value, mode: mode.value, top_k: topK.value, min_score: minScore.value });
    submit.disabled = true;
    mount(results, loading(t('kb.hit.searching')));
    try {
      const response = await api.post(kbPath(kb) + '/search', request, { signal: s.signal });
      if (!s.alive) return;
      memory.response = response;
      memory.request = request;
      show(response, request);
    } catch (err) {
      if (!s.alive || aborted(err)) return;
      mount(results, failure(err, run));
    } finally {
      submit.disabled = false;
    }
  }

  function show(response, request) {
    const tm = response.timings_ms || {};
    const timings = h('p.timings', { 'data-testid': 'hit-timings' }, t('kb.hit.timings', {
      embed: num(tm.embed_ms, 1), fulltext: num(tm.fulltext_ms, 1), semantic: num(tm.semantic_ms, 1), total: num(tm.total_ms, 1),
    }));
    const items = response.results;
    if (!items.length) {
      const text = request.min_score !== undefined
        ? t('kb.hit.emptyMin', { min: request.min_score, explain: modeHint(response.mode) })
        : t('kb.hit.empty');
      mount(results, h('div.empty.hit-empty', { 'data-testid': 'hit-empty' }, h('p', text)), timings);
      return;
    }
    // A bar needs 0..1: fused scores and cosines are already there; BM25 is unbounded,
    // so it is drawn relative to the best result.
    const best = Math.max(...items.map((r) => r.score), 1e-9);
    const width = (score) => Math.max(0, Math.min(1, response.mode === 'fulltext' ? score / best : score));
    const digits = response.mode === 'fulltext' ? 2 : 3;
    mount(results,
      h('div.row.hit-summary', h('h2.grow', t('kb.hit.count', { n: items.length })), timings),
      items.map((r, i) => h('div.chunk.hit-result', { 'data-testid': 'hit-result', dataset: { chunkId: String(r.chunk_id) } },
        h('div.chunk-head',
          h('span.hit-rank', '#' + (i + 1)),
          h('strong.break.hit-doc', r.document_name),
          r.page != null ? h('span', t('kb.page', { n: r.page })) : null,
          h('span.spacer'),
          h('span.score', t('kb.hit.score.' + response.mode) + ' ' + num(r.score, digits)),
          h('span.score-bar', { role: 'img', 'aria-label': num(r.score, digits) }, h('span', { style: { width: (width(r.score) * 100).toFixed(1) + '%' } }))),
        h('div.hit-retrievers',
          response.mode !== 'semantic'
            ? h('span', r.ranks.fulltext ? t('kb.hit.ftHit', { rank: r.ranks.fulltext, score: num(r.raw.bm25, 2) }) : t('kb.hit.ftMiss'))
            : null,
          response.mode !== 'fulltext'
            ? h('span', r.ranks.semantic ? t('kb.hit.semHit', { rank: r.ranks.semantic, score: num(r.raw.cosine, 4) }) : t('kb.hit.semMiss'))
            : null),
        h('div.chunk-text', r.text))));
  }

  if (memory.response) show(memory.response, memory.request);
  else mount(results, h('div.empty', h('p', t('kb.hit.intro'))));
}

// ---------------------------------------------------------------------------------------
// Settings tab

function settingsTab({ kb, s, panel, refreshKb }) {
  const name = h('input.input', { type: 'text', maxlength: '100', value: kb.name, autocomplete: 'off' });
  const description = h('textarea.textarea', { rows: '3', maxlength: '2000' });
  description.value = kb.description || '';
  const split = splitEditor(kb.split);
  const error = h('p.form-error', { role: 'alert' });
  const save = h('button.btn.btn-primary', { type: 'submit', 'data-testid': 'kb-save' }, t('common.save'));
  const form = h('form.panel.stack', {
    onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = '';
      const value = name.value.trim();
      if (!value) { error.textContent = t('kb.nameRequired'); name.focus(); return; }
      let splitSettings;
      try { splitSettings = split.value(); } catch (err) { error.textContent = err.message; return; }
      save.disabled = true;
      try {
        const updated = await api.patch(kbPath(kb), { name: value, description: description.value.trim(), split: splitSettings });
        if (!s.alive) return;
        Object.assign(kb, updated);
        refreshKb(updated);
        toast(t('common.saved'), 'success');
      } catch (err) {
        if (!s.alive || aborted(err)) return;
        error.textContent = err.code === 'conflict' ? t('kb.nameTaken', { name: value }) : errorText(err);
      } finally {
        save.disabled = false;
      }
    },
  },
  h('h2', t('kb.settings.basic')),
  field(t('common.name'), name),
  field(t('common.description'), description, t('kb.descHint')),
  h('h2', t('kb.settings.split')),
  h('p.field-hint', t('kb.settings.splitHint')),
  split.element,
  error,
  h('div.row', save));

  const info = h('section.panel',
    h('div.panel-head', h('h2', t('kb.settings.info'))),
    h('dl.kb-info',
      h('dt', t('kb.settings.id')), h('dd.break', h('code', kb.id)),
      h('dt', t('kb.settings.model')), h('dd.break', kb.embedding_model + ' · ' + t('kb.settings.dims', { n: kb.embedding_dims })),
      h('dt', t('kb.settings.created')), h('dd', formatTime(kb.created_at)),
      h('dt', t('kb.settings.updated')), h('dd', formatTime(kb.updated_at))));

  const danger = h('section.panel.danger-zone',
    h('div.panel-head', h('h2', t('kb.settings.danger'))),
    h('p.muted', t('kb.settings.dangerText', { docs: kb.document_count, chunks: kb.chunk_count })),
    h('div', h('button.btn.btn-danger', {
      type: 'button',
      'data-testid': 'kb-delete',
      onclick: async () => {
        if (!await confirmDialog(t('kb.settings.confirmDelete', { name: kb.name, docs: kb.document_count }), t('kb.settings.delete'))) return;
        try {
          await api.del(kbPath(kb));
          toast(t('kb.settings.deleted', { name: kb.name }), 'success');
          location.hash = '#/kbs';
        } catch (err) {
          if (!aborted(err)) toast(errorText(err), 'error');
        }
      },
    }, t('kb.settings.delete'))));

  mount(panel, form, info, danger);
}

// ---------------------------------------------------------------------------------------

export const pages = [
  { pattern: /^#\/kbs\/?$/, render: renderList },
  { pattern: /^#\/kbs\/([^/?#]+)(?:\/(documents|chunks|hit|settings)(?:\/([^/?#]+))?)?\/?$/, render: renderKb },
];
