// What the knowledge-base pages share: the addresses of a KB in the API and in the
// workspace, and the file types the upload accepts.

/** The file types an upload takes, as the person reads them and as the file picker filters. */
export const TYPES = 'PDF, Word (docx/doc), Excel (xlsx/xls), PowerPoint (pptx), OpenDocument (odt/ods), EPUB, CSV, JSON/JSONL, HTML, Markdown, TXT, PNG/JPEG/TIFF/WebP/BMP (OCR)';
export const ACCEPT = '.pdf,.docx,.xlsx,.pptx,.doc,.xls,.odt,.ods,.epub,.csv,.json,.jsonl,.html,.htm,.md,.markdown,.txt,.png,.jpg,.jpeg,.tif,.tiff,.webp,.bmp';

export const enc = encodeURIComponent;
export const kbPath = (kb) => '/api/kbs/' + enc(kb.id);
export const kbHash = (kb, tab, doc) => '#/kbs/' + enc(kb.id) + (tab ? '/' + tab : '') + (doc ? '/' + enc(doc) : '');
