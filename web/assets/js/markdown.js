// Answers are markdown from a model that read documents anyone could have written: render
// with marked, then sanitize with DOMPurify before it touches the page. Citation markers
// [n] become chips that open the cited passage.

import { marked } from '../vendor/marked.esm.js';
import DOMPurify from '../vendor/purify.es.mjs';

marked.setOptions({ gfm: true, breaks: true });

/** Sanitized HTML for markdown text. */
export function markdownHtml(text) {
  return DOMPurify.sanitize(marked.parse(text || ''), { USE_PROFILES: { html: true } });
}

/**
 * Render an answer into `el`: markdown, with each [n] that has a citation turned into a
 * chip button calling onCite(citation). Markers inside code stay as written.
 */
export function renderAnswer(el, text, citations = [], onCite) {
  el.innerHTML = markdownHtml(text);
  const byMarker = new Map(citations.map((c) => [c.marker, c]));
  if (!byMarker.size) return;
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => (node.parentElement.closest('code, pre') ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) {
    const parts = node.nodeValue.split(/(\[\d+(?:\s*[,，、]\s*\d+)*\]|【\d+】)/);
    if (parts.length === 1) continue;
    const frag = document.createDocumentFragment();
    for (const part of parts) {
      const numbers = part.match(/^[[【]([\d\s,，、]+)[\]】]$/)?.[1].split(/[\s,，、]+/).filter(Boolean).map(Number);
      if (numbers && numbers.every((n) => byMarker.has(n))) {
        for (const n of numbers) {
          const c = byMarker.get(n);
          const chip = document.createElement('button');
          chip.type = 'button';
          chip.className = 'cite';
          chip.textContent = String(n);
          chip.title = c.document_name + (c.label ? ' · ' + c.label : c.page ? ' · p.' + c.page : '');
          chip.addEventListener('click', () => onCite?.(c));
          frag.append(chip);
        }
      } else {
        frag.append(document.createTextNode(part));
      }
    }
    node.replaceWith(frag);
  }
}
