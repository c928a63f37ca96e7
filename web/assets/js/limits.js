// The limits the server enforces (GET /api/limits, which needs no token), loaded once
// before any page renders: the pages bound their inputs and word their hints with the
// server's numbers and file types instead of keeping copies of them.

import { errorFrom } from './api.js';

async function load() {
  const response = await fetch('/api/limits');
  if (!response.ok) throw await errorFrom(response);
  return response.json();
}

/** {question_chars, upload_bytes, accepted_types: [{label, extensions}], split: {...}, bot: {...}} */
export const limits = await load();

/** The file types an upload takes, as a person reads them. */
export const typeLabels = limits.accepted_types.map((type) => type.label).join(', ');

/** The same types as the file picker filters them (its accept attribute). */
export const acceptAttribute = limits.accepted_types
  .flatMap((type) => type.extensions.map((ext) => '.' + ext))
  .join(',');
