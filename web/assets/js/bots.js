// Bots: the list and the Coze-style editor, one module per part under bots/.
// Routes:
//   #/bots        the list (bots/list.js, bots/create.js)
//   #/bots/{id}   the editor (bots/editor.js): settings (bots/settings.js, with
//                 bots/knowledge.js and bots/persona.js), the debug chat (bots/debug.js),
//                 and the share / API dialog (bots/share.js, bots/keys.js).

import { renderEditor } from './bots/editor.js';
import { renderList } from './bots/list.js';

export const pages = [
  { pattern: /^#\/bots\/?$/, render: renderList },
  { pattern: /^#\/bots\/([^/?#]+)\/?$/, render: renderEditor },
];
