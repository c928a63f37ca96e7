// The chunks tab: one document's chunks, paged and filtered by a keyword, each editable
// (re-embedded on save) and deletable.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { aborted, confirmDialog, empty, errorText, failure, field, h, loading, modal, mount, toast } from '../ui.js';
import { enc, kbHash, kbPath, placeOf } from './common.js';

const CHUNK_PAGE = 20;

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

export function chunksTab({ kb, s, panel, docParam }) {
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
          ...placeOf(c),
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
