// A bot's API keys, inside the share dialog: create one (its secret is shown once), list
// them with when each was last used, and revoke one.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { limits } from '../limits.js';
import { confirmDialog, copyText, errorText, failure, formatTime, h, loading, mount, toast } from '../ui.js';
import { botPath, enc } from './common.js';

/** The keys' section of bot `id`; onCreated(key) gets each new key's secret. */
export function keysSection(id, onCreated) {
  const keyName = h('input.input', { maxlength: limits.bot.name_chars, placeholder: t('share.keyNamePlaceholder'), 'aria-label': t('share.keyName') });
  const keyError = h('p.form-error', { role: 'alert' });
  const shown = h('div.stack.hidden', { style: { gap: '8px' } });
  const keyList = h('div', loading(t('share.keysLoading')));
  const createBtn = h('button.btn.btn-primary', { type: 'button', 'data-testid': 'key-create', onclick: () => createKey() }, t('share.keyCreate'));

  async function createKey() {
    keyError.textContent = '';
    const name = keyName.value.trim() || 'default';
    createBtn.disabled = true;
    try {
      const k = await api.post(botPath(id) + '/keys', { name });
      onCreated(k.key);
      keyName.value = '';
      mount(shown,
        h('div.alert.alert-warning', { role: 'alert' }, '⚠ ' + t('share.keyShownOnce')),
        h('div.row.key-row', h('code.key-shown.grow', { 'data-testid': 'key-value' }, k.key),
          h('button.btn.btn-small', { type: 'button', onclick: () => copyText(k.key) }, t('share.keyCopied'))));
      shown.classList.remove('hidden');
      listKeys();
    } catch (err) {
      keyError.textContent = errorText(err);
    } finally {
      createBtn.disabled = false;
    }
  }

  async function listKeys() {
    try {
      const keys = await api.get(botPath(id) + '/keys');
      if (!keys.length) {
        mount(keyList, h('p.muted', t('share.noKeys')));
        return;
      }
      mount(keyList, h('div.table-wrap', h('table.table.keys-table',
        h('thead', h('tr', ['common.name', 'share.prefix', 'share.created', 'share.lastUsed', 'share.status', 'common.actions'].map((k) => h('th', t(k))))),
        h('tbody', keys.map((k) => h('tr', { class: k.revoked_at ? 'revoked' : '' },
          h('td.name', k.name),
          h('td', h('code', k.prefix + '…')),
          h('td.nowrap.small', formatTime(k.created_at)),
          h('td.nowrap.small', k.last_used_at ? formatTime(k.last_used_at) : t('share.never')),
          h('td', k.revoked_at
            ? h('span.badge.badge-error', { title: formatTime(k.revoked_at) }, t('share.revoked'))
            : h('span.badge.badge-success', t('share.active'))),
          h('td', k.revoked_at ? '' : h('button.link-btn.danger', {
            type: 'button',
            onclick: async () => {
              if (!(await confirmDialog(t('share.revokeConfirm', { name: k.name }), t('share.revoke')))) return;
              try {
                await api.del(botPath(id) + '/keys/' + enc(k.id));
                toast(t('share.revokedToast'), 'success');
                listKeys();
              } catch (err) {
                toast(errorText(err), 'error');
              }
            },
          }, t('share.revoke')))))))));
    } catch (err) {
      mount(keyList, failure(err, listKeys));
    }
  }
  listKeys();

  return h('section.share-section',
    h('h3', t('share.keys')),
    h('form.row.key-form', { onsubmit: (e) => { e.preventDefault(); createKey(); } }, h('div.grow', keyName), createBtn),
    keyError, shown, keyList);
}
