// What the knowledge-base pages share: the addresses of a KB in the API and in the
// workspace, and how a chunk says where it lies. (The file types an upload takes come from
// the server: see ../limits.js.)

import { t } from '../i18n.js';
import { h } from '../ui.js';

export const enc = encodeURIComponent;
export const kbPath = (kb) => '/api/kbs/' + enc(kb.id);
export const kbHash = (kb, tab, doc) => '#/kbs/' + enc(kb.id) + (tab ? '/' + tab : '') + (doc ? '/' + enc(doc) : '');

/** Where a chunk (or search hit) lies, for its heading: a table's sheet and rows (its
 * `label`) or its page, and an "OCR" badge when its text was read from a scan. */
export function placeOf(c) {
  return [
    c.label ? h('span.chunk-label', { 'data-testid': 'chunk-label' }, c.label)
      : c.page != null ? h('span', t('kb.page', { n: c.page })) : null,
    c.ocr ? h('span.badge.badge-info', { 'data-testid': 'ocr-badge', title: t('kb.ocrHint') }, t('kb.ocr')) : null,
  ];
}
