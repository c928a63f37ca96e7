// The split editor (automatic, or custom separator / max tokens / overlap), shared by the
// documents tab (settings for an upload) and the settings tab (the KB's default), and a
// chunk as the split preview shows it.

import { t } from '../i18n.js';
import { field, h } from '../ui.js';
import { limits } from '../limits.js';
import { placeOf } from './common.js';

/** Show a stored separator as typed: real newlines and tabs as \n and \t escapes. */
const escapeSeparator = (sep) => sep.replaceAll('\n', '\\n').replaceAll('\t', '\\t').replaceAll('\r', '\\r');
let splitEditors = 0;

export function splitEditor(initial) {
  const custom = initial && initial.mode === 'custom';
  const group = 'split-mode-' + (++splitEditors);
  const auto = h('input', { type: 'radio', name: group, value: 'auto', checked: !custom });
  const manual = h('input', { type: 'radio', name: group, value: 'custom', checked: custom });
  const separator = h('input.input', { type: 'text', value: custom ? escapeSeparator(initial.separator) : '\\n\\n', autocomplete: 'off' });
  const { min_tokens: minTokens, max_tokens: maxAllowed, max_overlap_divisor: divisor, auto_tokens: autoTokens, auto_overlap_tokens: autoOverlap } = limits.split;
  const bounds = { min: minTokens, max: maxAllowed };
  // The largest overlap a chunk of `tokens` may have (the server's rule, from /api/limits).
  const maxOverlap = (tokens) => Math.floor(tokens / divisor);
  const max = h('input.input', { type: 'number', min: String(minTokens), max: String(maxAllowed), step: '1', value: String(custom ? initial.max_tokens : autoTokens) });
  const overlap = h('input.input', { type: 'number', 'data-testid': 'split-overlap', min: '0', max: String(maxOverlap(maxAllowed)), step: '1', value: String(custom ? (initial.overlap_tokens ?? 0) : autoOverlap) });
  const fields = h('div.grid-3.split-custom',
    field(t('kb.split.separator'), separator, t('kb.split.separatorHint')),
    field(t('kb.split.maxTokens'), max, t('kb.split.maxHint', bounds)),
    field(t('kb.split.overlap'), overlap, t('kb.split.overlapHint', { divisor })));
  const sync = () => fields.classList.toggle('hidden', !manual.checked);
  auto.addEventListener('change', sync);
  manual.addEventListener('change', sync);
  sync();
  const element = h('fieldset.split-settings',
    h('legend', t('kb.split.legend')),
    h('div.split-options',
      h('label.split-option', auto, h('span', h('strong', t('kb.split.auto')), h('span.field-hint', t('kb.split.autoHint', { tokens: autoTokens, overlap: autoOverlap })))),
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
      if (!Number.isInteger(maxTokens) || maxTokens < minTokens || maxTokens > maxAllowed) { max.focus(); throw new Error(t('kb.split.errMax', bounds)); }
      const most = maxOverlap(maxTokens);
      if (!Number.isInteger(overlapTokens) || overlapTokens < 0 || overlapTokens > most) {
        overlap.focus();
        throw new Error(t('kb.split.errOverlap', { max: most, divisor }));
      }
      return { mode: 'custom', separator: sep, max_tokens: maxTokens, overlap_tokens: overlapTokens };
    },
  };
}

export const splitLabel = (split) => (split.mode === 'custom'
  ? `${t('kb.split.custom')} · ${split.separator} · ≤${split.max_tokens} · ${split.overlap_tokens}`
  : t('kb.split.auto'));

/** A chunk as read-only preview. */
export function previewChunk(c) {
  return h('div.chunk',
    h('div.chunk-head',
      h('strong', '#' + (c.ordinal + 1)),
      ...placeOf(c),
      h('span', t('kb.tokens', { n: c.token_count })),
      h('span', t('kb.chars', { n: [...c.text].length }))),
    h('div.chunk-text', c.text));
}
