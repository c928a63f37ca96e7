// The limits the server enforces (GET /api/limits, which needs no token), loaded once
// before any page renders: the pages bound their inputs and word their hints with the
// server's numbers and file types instead of keeping copies of them.

import { errorFrom } from './api.js';

async function load() {
  try {
    const response = await fetch('/api/limits');
    if (!response.ok) throw await errorFrom(response);
    return await response.json();
  } catch (e) {
    // No page can render without these numbers; say why instead of leaving it blank.
    // Both languages: the language tables are not loaded yet.
    const note = document.createElement('p');
    note.style.margin = '2rem';
    note.textContent = '无法连接服务器，请稍后刷新。 Cannot reach the server; reload later. (' + (e.message || e) + ')';
    document.body.replaceChildren(note);
    throw e;
  }
}

/** {question_chars, upload_bytes, accepted_types: [{label, extensions}], split: {...}, bot: {...}} */
export const limits = await load();

/** The file types an upload takes, as a person reads them. */
export const typeLabels = limits.accepted_types.map((type) => type.label).join(', ');

/** The same types as the file picker filters them (its accept attribute). */
export const acceptAttribute = limits.accepted_types
  .flatMap((type) => type.extensions.map((ext) => '.' + ext))
  .join(',');
