// The dialog that creates a bot (name and description) and opens its editor.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { limits } from '../limits.js';
import { errorText, field, h, modal } from '../ui.js';
import { enc } from './common.js';

export function openCreate() {
  const name = h('input.input', { maxlength: limits.bot.name_chars, placeholder: t('bots.namePlaceholder'), required: true });
  const description = h('textarea.textarea', { rows: 3, maxlength: limits.bot.description_chars, placeholder: t('bots.descPlaceholder') });
  const status = h('p.form-error', { role: 'alert' });
  const create = async () => {
    if (!name.value.trim()) {
      status.textContent = t('bots.nameRequired');
      name.focus();
      return true;
    }
    try {
      const bot = await api.post('/api/bots', { name: name.value.trim(), description: description.value });
      location.hash = '#/bots/' + enc(bot.id);
      return false;
    } catch (err) {
      status.textContent = errorText(err);
      return true;
    }
  };
  const m = modal({
    title: t('bots.createTitle'),
    body: h('form.stack', { onsubmit: (e) => { e.preventDefault(); m.element.querySelector('.btn-primary')?.click(); } },
      field(t('editor.name'), name), field(t('editor.description'), description), status),
    actions: [
      { label: t('common.cancel') },
      { label: t('common.create'), kind: 'primary', onClick: create },
    ],
  });
}
