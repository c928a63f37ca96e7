// The documents tab: upload (drop zone, file picker, pasted text, web pages by URL with an
// optional crawl, split preview), and the documents' table polled while any is queued or
// processing (status, stage, progress, the reason of a failure, a web page's link and
// sync, enable switch, delete).

import { api } from '../api.js';
import { t } from '../i18n.js';
import { aborted, confirmDialog, empty, errorText, failure, field, formatBytes, h, loading, modal, mount, toast } from '../ui.js';
import { enc, kbHash, kbPath } from './common.js';
import { acceptAttribute, limits, typeLabels } from '../limits.js';
import { previewChunk, splitEditor, splitLabel } from './split.js';

const PREVIEW_SHOWN = 200;

/** Run fn over items, at most n at a time. */
async function pool(items, n, fn) {
  let next = 0;
  const worker = async () => { while (next < items.length) { const i = next++; await fn(items[i], i); } };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

function statusBadge(d) {
  const kind = { queued: '', processing: '.badge-info', indexed: '.badge-success', failed: '.badge-error' }[d.status] ?? '';
  return h('span.badge' + kind, d.status === 'processing' || d.status === 'queued' ? h('span.spinner.spinner-small') : null,
    t('kb.status.' + d.status) === 'kb.status.' + d.status ? d.status : t('kb.status.' + d.status));
}

function statusCell(d) {
  const parts = [statusBadge(d)];
  if (d.status === 'processing') {
    const pct = Math.round(Math.max(0, Math.min(1, d.progress ?? 0)) * 100);
    // While a scan is read, the pages read of its pages ("OCR 第3/12页").
    const stage = d.stage === 'ocr' && d.ocr_pages_total
      ? t('kb.stage.ocrPages', { done: d.ocr_pages_done ?? 0, total: d.ocr_pages_total })
      : d.stage ? (t('kb.stage.' + d.stage) === 'kb.stage.' + d.stage ? d.stage : t('kb.stage.' + d.stage)) : '';
    // The job's estimate of the OCR or embedding time left, once it has one.
    const eta = d.eta_seconds == null ? '' : t('kb.eta', { time: d.eta_seconds >= 90 ? Math.round(d.eta_seconds / 60) + ' min' : Math.max(1, Math.round(d.eta_seconds)) + ' s' });
    parts.push(h('div.small.muted.doc-stage', [stage, pct + '%', eta].filter(Boolean).join(' · ')),
      h('div.progress', { role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(pct) }, h('span', { style: { width: pct + '%' } })));
  }
  if (d.status === 'failed') {
    const message = d.error ? (d.error.message || d.error.code) : '';
    parts.push(h('p.doc-error', { 'data-testid': 'doc-error' }, t('kb.failedReason', { message: message || '—' })));
  }
  // A web page whose last check did not reach it keeps its text; say why it may be stale.
  if (d.check_error) {
    const key = d.check_error.code === 'page_gone' ? 'kb.web.gone' : 'kb.web.unreachable';
    parts.push(h('p.doc-error', { 'data-testid': 'doc-check-error', title: d.check_error.message }, t(key, { message: d.check_error.message })));
  }
  return parts;
}

export function documentsTab({ kb, s, panel, refreshKb }) {
  const path = kbPath(kb) + '/documents';
  const split = splitEditor(kb.split);
  const input = h('input.hidden', {
    type: 'file', multiple: true, accept: acceptAttribute, 'data-testid': 'upload-input', 'aria-label': t('kb.drop.label'),
    onchange: () => {
      const files = [...input.files];
      input.value = '';
      if (files.length) uploadFiles(files);
    },
  });
  const previewInput = h('input.hidden', {
    type: 'file', multiple: true, accept: acceptAttribute, 'aria-label': t('kb.previewPick'),
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
  }, h('span.dropzone-icon', { 'aria-hidden': 'true' }, '↑'), h('strong', t('kb.drop.title')), h('span.small', t('kb.drop.hint', { types: typeLabels })));
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
      h('button.btn.btn-small', { type: 'button', onclick: openPaste }, t('kb.paste')),
      h('button.btn.btn-small', { type: 'button', 'data-testid': 'add-web', onclick: openWeb }, t('kb.web'))),
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
    const busy = d.status === 'queued' || d.status === 'processing';
    return h('tr', { 'data-testid': 'doc-row', dataset: { status: d.status, name: d.name, id: d.id } },
      h('td.name', d.source_url
        ? h('a.doc-name.break', { href: safeUrl(d.source_url), target: '_blank', rel: 'noopener noreferrer', title: t('kb.web.open') }, d.name)
        : h('div.doc-name.break', d.name),
        d.pages ? h('div.small.faint', t('kb.docs.pages', { n: d.pages })) : null,
        d.checked_at ? h('div.small.faint', t('kb.web.checked', { time: new Date(d.checked_at).toLocaleString() })) : null),
      h('td.doc-status', statusCell(d)),
      h('td.nowrap', { 'data-label': t('kb.docs.chunks') }, chunks),
      h('td.nowrap', { 'data-label': t('kb.docs.size') }, formatBytes(d.bytes)),
      h('td', { 'data-label': t('kb.docs.enabled') }, toggle),
      h('td.nowrap.doc-actions',
        d.source_url ? h('button.link-btn', { type: 'button', disabled: busy, 'data-testid': 'doc-sync', onclick: (e) => syncDoc(d, e.currentTarget) }, t('kb.web.sync')) : null,
        h('button.link-btn.danger', { type: 'button', onclick: () => removeDoc(d) }, t('common.delete'))));
  }

  /** Fetch a web page again; the server indexes it again only if it changed. */
  async function syncDoc(d, button) {
    button.disabled = true;
    try {
      const result = await api.post(path + '/' + enc(d.id) + '/sync', {}, { signal: s.signal });
      if (!s.alive) return;
      toast(t(result.changed ? 'kb.web.changed' : 'kb.web.unchanged', { name: d.name }), 'success');
      loadDocs(true);
    } catch (err) {
      if (!s.alive || aborted(err)) return;
      button.disabled = false;
      toast(errorText(err), 'error');
      // The failed check is recorded on the document (gone, unreachable): show it.
      loadDocs(true);
    }
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

  function settle(set, outcome, count = 1, queuedKey = 'kb.upload.queued') {
    if (count > 1) {
      set('queued', t('kb.web.queuedMany', { n: count }));
    } else if (outcome.duplicate) {
      const existing = t('kb.status.' + outcome.status) === 'kb.status.' + outcome.status ? outcome.status : t('kb.status.' + outcome.status);
      set('duplicate', t('kb.upload.duplicate', { status: existing }));
    } else {
      set('queued', t(queuedKey));
    }
  }

  function uploadError(err) {
    if (err.status === 413 || err.code === 'payload_too_large') {
      const limit = /(\d+)\s*bytes/.exec(err.message || '');
      return limit ? t('kb.upload.tooLarge', { limit: formatBytes(Number(limit[1])) }) : t('kb.upload.tooLargeNoLimit');
    }
    if (err.status === 415 || err.code === 'unsupported_type') return t('kb.upload.unsupported', { types: typeLabels });
    if (err.code === 'network') return t('kb.upload.network');
    if (err.code === 'unauthorized') return errorText(err);
    return t('kb.upload.failed', { message: err.message });
  }

  // One request per file: the server turns a whole batch down when one file is
  // unreadable, and a person needs to know which file went wrong and why.
  async function uploadFiles(files, chosen) {
    const splitSettings = chosen || settings();
    if (!splitSettings) return;
    await pool(files, 3, (file) => send(uploadItem(file.name, file.size),
      () => api.upload(path, [file], { split: splitSettings }, { signal: s.signal })));
  }

  async function uploadText(name, text, splitSettings) {
    const body = { text, split: splitSettings };
    if (name) body.name = name;
    await send(uploadItem(name || 'pasted.txt', new Blob([text]).size), () => api.post(path, body, { signal: s.signal }));
  }

  /** Make one upload request and show on its line of "this upload" how it settled. */
  async function send(set, request, queuedKey) {
    try {
      const result = await request();
      if (!s.alive) return;
      settle(set, result.documents[0], result.documents.length, queuedKey);
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
    const name = h('input.input', { type: 'text', maxlength: limits.document_name_chars, placeholder: t('kb.paste.namePlaceholder'), autocomplete: 'off' });
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

  /** Add web pages: one request per URL, so a refused address names itself. */
  function openWeb() {
    const web = limits.web;
    const urls = h('textarea.textarea', { rows: '5', placeholder: 'https://example.com/handbook.html', 'data-testid': 'web-urls' });
    const crawl = h('input', { type: 'checkbox', 'data-testid': 'web-crawl' });
    const depth = h('input.input', { type: 'number', min: '0', max: String(web.crawl_depth_max), value: '1' });
    const pages = h('input.input', { type: 'number', min: '1', max: String(web.crawl_pages_max), value: '50' });
    const crawlBox = h('div.stack.hidden', field(t('kb.web.depth'), depth, t('kb.web.depthHint', { max: web.crawl_depth_max })),
      field(t('kb.web.pages'), pages, t('kb.web.pagesHint', { max: web.crawl_pages_max })));
    crawl.onchange = () => crawlBox.classList.toggle('hidden', !crawl.checked);
    const error = h('p.form-error', { role: 'alert' });
    modal({
      title: t('kb.web.title'),
      wide: true,
      body: [
        field(t('kb.web.urls'), urls, t('kb.web.urlsHint', { n: web.urls_per_request, size: formatBytes(web.fetch_bytes), redirects: web.redirects, sitemaps: web.sitemaps_per_index })),
        h('label.row', crawl, ' ', t('kb.web.crawl')), crawlBox, error,
      ],
      actions: [
        { label: t('common.cancel') },
        {
          label: t('kb.paste.add'),
          kind: 'primary',
          onClick: () => {
            const list = urls.value.split(/\s+/).map((u) => u.trim()).filter(Boolean);
            if (!list.length || list.length > web.urls_per_request) {
              error.textContent = t('kb.web.count', { n: web.urls_per_request });
              return true;
            }
            const bounds = { max_depth: Number(depth.value), max_pages: Number(pages.value) };
            if (crawl.checked && !(bounds.max_depth >= 0 && bounds.max_depth <= web.crawl_depth_max
              && bounds.max_pages >= 1 && bounds.max_pages <= web.crawl_pages_max)) {
              error.textContent = t('kb.web.bounds', { depth: web.crawl_depth_max, pages: web.crawl_pages_max });
              return true;
            }
            const chosen = settings();
            if (!chosen) return true;
            pool(list, 3, (url) => {
              const body = { urls: [url], split: chosen };
              if (crawl.checked) body.crawl = bounds;
              return send(uploadItem(url), () => api.post(path, body, { signal: s.signal }), 'kb.web.queued');
            });
            return false;
          },
        },
      ],
    });
  }

  loadDocs();
}

/** Only http(s) links are made clickable (a stored address is shown, never run). */
function safeUrl(url) {
  return /^https?:\/\//i.test(url) ? url : '#';
}
