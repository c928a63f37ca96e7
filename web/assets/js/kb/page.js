// #/kbs/{id}/{tab}: one knowledge base — its header (name, description, counts) and the
// tab bar; each tab is its own module and gets {kb, s, panel, refreshKb, docParam}.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { aborted, empty, errorText, failure, h, loading, mount, scope, toast } from '../ui.js';
import { chunksTab } from './chunks.js';
import { enc, kbHash } from './common.js';
import { documentsTab } from './documents.js';
import { hitTab } from './hit.js';
import { settingsTab } from './settings.js';

const TABS = ['documents', 'chunks', 'hit', 'settings'];

export function renderKb(main, match) {
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
