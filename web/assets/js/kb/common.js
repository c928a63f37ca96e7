// What the knowledge-base pages share: the addresses of a KB in the API and in the
// workspace. (The file types an upload takes come from the server: see ../limits.js.)

export const enc = encodeURIComponent;
export const kbPath = (kb) => '/api/kbs/' + enc(kb.id);
export const kbHash = (kb, tab, doc) => '#/kbs/' + enc(kb.id) + (tab ? '/' + tab : '') + (doc ? '/' + enc(doc) : '');
