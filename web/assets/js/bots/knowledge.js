// The bot editor's knowledge-base picker: a checkbox per knowledge base, and the ones the
// draft names that no longer exist, so that saving does not drop them silently.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { failure, h, loading, mount } from '../ui.js';

/** isAlive() says whether the editor is still shown; onLoaded runs once the list is in. */
export function kbPicker({ isAlive, onLoaded }) {
  const element = h('div.kb-list', { 'data-path': 'knowledge_bases' }, loading(t('editor.kbsLoading')));
  let kbs = null; // all knowledge bases, once loaded
  let pending = []; // the selection to show once they are

  function render(selected) {
    if (!kbs) return;
    const known = new Set(kbs.map((k) => k.id));
    const missing = selected.filter((id) => !known.has(id));
    const box = (id, label, meta) => h('label.check.kb-option',
      h('input', { type: 'checkbox', value: id, checked: selected.includes(id), 'data-testid': 'kb-checkbox' }),
      h('span.grow', h('span.break', label), meta ? h('span.faint.small', ' · ' + meta) : null));
    if (!kbs.length && !missing.length) {
      mount(element, h('div.muted', t('editor.kbsEmpty'), ' ', h('a', { href: '#/kbs' }, t('editor.kbsGo'))));
      return;
    }
    mount(element,
      kbs.map((k) => box(k.id, k.name, t('editor.kbDocs', { docs: k.document_count ?? 0, chunks: k.chunk_count ?? 0 }))),
      missing.map((id) => box(id, t('editor.kbMissing', { id }))));
  }

  async function load() {
    mount(element, loading(t('editor.kbsLoading')));
    try {
      const list = await api.get('/api/kbs');
      if (!isAlive()) return;
      kbs = list;
      render(pending);
      onLoaded();
    } catch (err) {
      if (isAlive()) mount(element, failure(err, load));
    }
  }

  return {
    element,
    load,
    /** Show `ids` as the selection (kept until the list has loaded). */
    set(ids) {
      if (kbs) render(ids || []);
      else pending = [...(ids || [])];
    },
    /** The selected ids; until the list has loaded there are no boxes to read: what was set. */
    selected() {
      return kbs ? [...element.querySelectorAll('input[type=checkbox]:checked')].map((x) => x.value) : [...pending];
    },
  };
}
