// The persona optimiser: the model rewrites the persona as typed, and the suggestion is
// shown beside it to adopt or discard. It can take a minute on a CPU, so the button
// counts the seconds.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { failure, h, mount, toast } from '../ui.js';
import { botPath } from './common.js';

/** The optimiser for the persona `textarea` of bot `botId()`; isAlive() says whether the editor is still shown. */
export function personaOptimizer({ botId, textarea, isAlive }) {
  let abort = null;
  const button = h('button.btn.btn-small', { type: 'button', 'data-testid': 'persona-optimize', onclick: () => optimize() }, t('editor.optimize'));
  const status = h('span.muted.small', { role: 'status', 'aria-live': 'polite' });
  const suggestion = h('div.stack.hidden');

  async function optimize() {
    const mine = new AbortController();
    abort = mine;
    button.disabled = true;
    suggestion.classList.add('hidden');
    const started = Date.now();
    const tick = () => {
      const s = Math.round((Date.now() - started) / 1000);
      button.textContent = t('editor.optimizing', { s });
    };
    tick();
    status.textContent = t('editor.optimizeSlow');
    const timer = setInterval(tick, 1000);
    try {
      const r = await api.post(botPath(botId()) + '/optimize-persona', { persona: textarea.value }, { signal: mine.signal });
      if (!isAlive()) return;
      const seconds = Math.round((r.timings_ms ?? Date.now() - started) / 1000);
      mount(suggestion,
        h('div.field-label', t('editor.suggestion', { s: seconds })),
        h('div.suggest-box.break', r.persona),
        h('div.row',
          h('button.btn.btn-primary.btn-small', {
            type: 'button',
            onclick: () => {
              textarea.value = r.persona;
              textarea.dispatchEvent(new Event('input', { bubbles: true }));
              suggestion.classList.add('hidden');
              toast(t('editor.adopted'));
            },
          }, t('editor.adopt')),
          h('button.btn.btn-small', { type: 'button', onclick: () => suggestion.classList.add('hidden') }, t('editor.discard'))));
      suggestion.classList.remove('hidden');
      suggestion.scrollIntoView({ behavior: 'smooth', block: 'nearest' });
    } catch (err) {
      if (err.name === 'AbortError' || !isAlive()) return;
      mount(suggestion, failure(err, () => optimize()));
      suggestion.classList.remove('hidden');
    } finally {
      clearInterval(timer);
      if (abort === mine) abort = null;
      button.disabled = false;
      button.textContent = t('editor.optimize');
      status.textContent = '';
    }
  }

  return {
    button,
    status,
    suggestion,
    /** Stop a rewrite still running (the editor is left). */
    stop() { abort?.abort(); },
  };
}
