// #/kbs: the knowledge bases as cards, with the button that opens the create dialog.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { aborted, empty, failure, h, loading, mount, scope } from '../ui.js';
import { kbHash } from './common.js';
import { openCreate } from './create.js';

export function renderList(main) {
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
