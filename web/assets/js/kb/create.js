// The dialog that creates a knowledge base (name and description) and opens it.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { errorText, field, h, modal, toast } from '../ui.js';
import { kbHash } from './common.js';
import { limits } from '../limits.js';

export function openCreate() {
  const name = h('input.input', { type: 'text', maxlength: limits.kb_name_chars, autocomplete: 'off', required: true });
  const description = h('textarea.textarea', { rows: '3', maxlength: limits.kb_description_chars });
  const error = h('p.form-error', { role: 'alert' });
  const m = modal({
    title: t('kb.create'),
    body: [field(t('common.name'), name), field(t('common.description'), description, t('kb.descHint')), error],
    actions: [
      { label: t('common.cancel') },
      {
        label: t('common.create'),
        kind: 'primary',
        onClick: async () => {
          const value = name.value.trim();
          if (!value) {
            error.textContent = t('kb.nameRequired');
            name.focus();
            return true;
          }
          try {
            const kb = await api.post('/api/kbs', { name: value, description: description.value.trim() });
            toast(t('kb.created'), 'success');
            location.hash = kbHash(kb);
            return false;
          } catch (err) {
            error.textContent = err.code === 'conflict' ? t('kb.nameTaken', { name: value }) : errorText(err);
            return true;
          }
        },
      },
    ],
  });
  submitOnEnter(name, m);
}

/** Enter in a one-line input presses the dialog's primary button (not mid-IME). */
function submitOnEnter(input, m) {
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.isComposing) {
      e.preventDefault();
      m.element.querySelector('.modal-actions .btn-primary')?.click();
    }
  });
}
