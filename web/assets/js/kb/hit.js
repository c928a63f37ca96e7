// The hit-testing tab: a question, a mode, top_k and a minimum score, and the chunks that
// come back with the fused score and each retriever's rank and raw score.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { aborted, failure, field, h, loading, mount } from '../ui.js';
import { kbPath, placeOf } from './common.js';
import { limits } from '../limits.js';

// Hit-testing form and last answer per KB, so switching tabs and back keeps them.
const hitMemory = new Map();
const num = (n, digits) => (n === null || n === undefined ? '—' : Number(n).toFixed(digits));

const modeHint = (mode) => t({ hybrid: 'kb.hit.hintHybrid', fulltext: 'kb.hit.hintFulltext', semantic: 'kb.hit.hintSemantic' }[mode] || 'kb.hit.hintHybrid');

export function hitTab({ kb, s, panel }) {
  const memory = hitMemory.get(kb.id) || { query: '', mode: 'hybrid', top_k: '5', min_score: '', response: null, request: null };
  hitMemory.set(kb.id, memory);

  const query = h('input.input', { type: 'text', 'data-testid': 'hit-query', placeholder: t('kb.hit.queryPlaceholder'), maxlength: limits.search_query_chars, value: memory.query });
  const mode = h('select.select', { 'data-testid': 'hit-mode' },
    ['hybrid', 'fulltext', 'semantic'].map((m) => h('option', { value: m, selected: m === memory.mode }, t('kb.hit.' + m))));
  const topK = h('input.input', { type: 'number', min: '1', max: String(limits.search_top_k_max), step: '1', value: memory.top_k, 'data-testid': 'hit-topk' });
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
    if (!Number.isInteger(k) || k < 1 || k > limits.search_top_k_max) { error.textContent = t('kb.hit.badTopK', { max: limits.search_top_k_max }); topK.focus(); return; }
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
          ...placeOf(r),
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
