// Knowledge bases: the list, and one KB's documents (upload, status, enable, delete),
// chunks (browse, edit, delete), hit testing and settings, one module each under kb/.
// Routes:
//   #/kbs                         the list (kb/list.js, kb/create.js)
//   #/kbs/{id}[/{tab}[/{doc}]]    one KB (kb/page.js); tab = documents | chunks | hit |
//                                 settings, and the chunks tab may name the document to open.

import { renderList } from './kb/list.js';
import { renderKb } from './kb/page.js';

export const pages = [
  { pattern: /^#\/kbs\/?$/, render: renderList },
  { pattern: /^#\/kbs\/([^/?#]+)(?:\/(documents|chunks|hit|settings)(?:\/([^/?#]+))?)?\/?$/, render: renderKb },
];
