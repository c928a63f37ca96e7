// The settings tab: name, description, the default split, the OCR languages and the web
// pages' re-sync schedule; the index's facts; delete.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { aborted, confirmDialog, errorText, field, formatTime, h, mount, toast } from '../ui.js';
import { kbPath } from './common.js';
import { splitEditor } from './split.js';
import { limits } from '../limits.js';

export function settingsTab({ kb, s, panel, refreshKb }) {
  const name = h('input.input', { type: 'text', maxlength: limits.kb_name_chars, value: kb.name, autocomplete: 'off' });
  const description = h('textarea.textarea', { rows: '3', maxlength: limits.kb_description_chars });
  description.value = kb.description || '';
  const split = splitEditor(kb.split);
  const ocrLanguages = h('input.input', { type: 'text', value: kb.ocr_languages || '', autocomplete: 'off', spellcheck: false, 'data-testid': 'kb-ocr-languages' });
  const web = limits.web;
  const syncEvery = h('input.input', {
    type: 'number', min: String(web.sync_interval_minutes_min), max: String(web.sync_interval_minutes_max), step: '1',
    value: kb.web_sync_interval_minutes ?? '', placeholder: t('kb.settings.webSyncOff'), 'data-testid': 'kb-web-sync',
  });
  const error = h('p.form-error', { role: 'alert' });
  const save = h('button.btn.btn-primary', { type: 'submit', 'data-testid': 'kb-save' }, t('common.save'));
  const form = h('form.panel.stack', {
    onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = '';
      const value = name.value.trim();
      if (!value) { error.textContent = t('kb.nameRequired'); name.focus(); return; }
      let splitSettings;
      try { splitSettings = split.value(); } catch (err) { error.textContent = err.message; return; }
      // Empty turns the schedule off (null); a number must be within the server's bounds.
      const every = syncEvery.value.trim() === '' ? null : Number(syncEvery.value);
      if (every !== null && !(Number.isInteger(every) && every >= web.sync_interval_minutes_min && every <= web.sync_interval_minutes_max)) {
        error.textContent = t('kb.settings.webSyncBounds', { min: web.sync_interval_minutes_min, max: web.sync_interval_minutes_max });
        syncEvery.focus();
        return;
      }
      save.disabled = true;
      try {
        const body = { name: value, description: description.value.trim(), split: splitSettings };
        // Sent only when changed: the server checks the languages against tesseract's.
        const languages = ocrLanguages.value.trim();
        if (languages !== (kb.ocr_languages || '')) body.ocr_languages = languages;
        if (every !== (kb.web_sync_interval_minutes ?? null)) body.web_sync_interval_minutes = every;
        const updated = await api.patch(kbPath(kb), body);
        if (!s.alive) return;
        Object.assign(kb, updated);
        refreshKb(updated);
        toast(t('common.saved'), 'success');
      } catch (err) {
        if (!s.alive || aborted(err)) return;
        error.textContent = err.code === 'conflict' ? t('kb.nameTaken', { name: value }) : errorText(err);
      } finally {
        save.disabled = false;
      }
    },
  },
  h('h2', t('kb.settings.basic')),
  field(t('common.name'), name),
  field(t('common.description'), description, t('kb.descHint')),
  h('h2', t('kb.settings.split')),
  h('p.field-hint', t('kb.settings.splitHint')),
  split.element,
  h('h2', t('kb.settings.ocr')),
  field(t('kb.settings.ocrLanguages'), ocrLanguages, t('kb.settings.ocrHint')),
  h('h2', t('kb.settings.web')),
  field(t('kb.settings.webSync'), syncEvery, t('kb.settings.webSyncHint', { min: web.sync_interval_minutes_min, max: web.sync_interval_minutes_max })),
  error,
  h('div.row', save));

  const info = h('section.panel',
    h('div.panel-head', h('h2', t('kb.settings.info'))),
    h('dl.kb-info',
      h('dt', t('kb.settings.id')), h('dd.break', h('code', kb.id)),
      h('dt', t('kb.settings.model')), h('dd.break', kb.embedding_model + ' · ' + t('kb.settings.dims', { n: kb.embedding_dims })),
      h('dt', t('kb.settings.created')), h('dd', formatTime(kb.created_at)),
      h('dt', t('kb.settings.updated')), h('dd', formatTime(kb.updated_at))));

  const danger = h('section.panel.danger-zone',
    h('div.panel-head', h('h2', t('kb.settings.danger'))),
    h('p.muted', t('kb.settings.dangerText', { docs: kb.document_count, chunks: kb.chunk_count })),
    h('div', h('button.btn.btn-danger', {
      type: 'button',
      'data-testid': 'kb-delete',
      onclick: async () => {
        if (!await confirmDialog(t('kb.settings.confirmDelete', { name: kb.name, docs: kb.document_count }), t('kb.settings.delete'))) return;
        try {
          await api.del(kbPath(kb));
          toast(t('kb.settings.deleted', { name: kb.name }), 'success');
          location.hash = '#/kbs';
        } catch (err) {
          if (!aborted(err)) toast(errorText(err), 'error');
        }
      },
    }, t('kb.settings.delete'))));

  mount(panel, form, info, danger);
}
