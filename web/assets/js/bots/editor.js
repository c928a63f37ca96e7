// #/bots/{id}: the Coze-style editor — the settings (settings.js) on the left, the debug
// chat with the saved draft (debug.js) on the right; save, publish, share (share.js) and
// delete in the header. Edits not yet saved are guarded: leaving the page asks first, and
// a language switch keeps them.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { confirmDialog, empty, errorText, failure, h, loading, mount, toast } from '../ui.js';
import { avatarLetter, botPath, statusBadges } from './common.js';
import { debugChat } from './debug.js';
import { botSettings, serverProblem } from './settings.js';
import { openShare } from './share.js';

// A language switch re-renders the page; edits not yet saved survive it through here.
// This listener is added when the module loads, before the router's, so it runs first.
let langSwitching = false;
let stash = null; // {botId, updatedAt, draft}
window.addEventListener('zhiku:lang', () => {
  langSwitching = true;
  setTimeout(() => { langSwitching = false; });
});

export function renderEditor(main, match) {
  const botId = decodeURIComponent(match[1]);
  let alive = true;
  let chat = null;
  let settings = null;
  const visit = { key: null }; // the key created in this visit, for the chat link
  const onUnload = (e) => { if (isDirty()) { e.preventDefault(); e.returnValue = ''; } };
  let isDirty = () => false;
  let keepOnLangSwitch = () => {};
  let onKey = null;

  mount(main, loading());

  async function load() {
    mount(main, loading());
    let bot;
    try {
      bot = await api.get(botPath(botId));
    } catch (err) {
      if (!alive) return;
      mount(main, h('div.breadcrumb', h('a', { href: '#/bots' }, '← ' + t('editor.back'))),
        err.status === 404 ? empty(t('editor.notFound')) : failure(err, load));
      return;
    }
    if (alive) build(bot);
  }

  function build(initial) {
    let bot = initial;

    // --- header
    const title = h('h1.break');
    const badges = h('span.row');
    const dirtyBadge = h('span.badge.badge-warning.hidden', '● ' + t('editor.unsaved'));
    const saveBtn = h('button.btn', { type: 'button', 'data-testid': 'bot-save', onclick: () => save() }, t('editor.save'));
    const publishBtn = h('button.btn.btn-primary', { type: 'button', 'data-testid': 'bot-publish', onclick: () => publish() }, t('editor.publish'));
    const shareBtn = h('button.btn', { type: 'button', 'data-testid': 'share', onclick: () => openShare(bot, visit) }, t('editor.share'));
    const deleteBtn = h('button.btn.btn-ghost.editor-delete', { type: 'button', onclick: () => removeBot() }, t('editor.delete'));

    settings = botSettings({
      botId: () => bot.id,
      isAlive: () => alive,
      onEdit: () => refreshDirty(),
      onSubmit: () => save(),
      foot: h('div.row.editor-foot', h('span.spacer'), deleteBtn),
    });
    isDirty = () => settings.differsFrom(bot.draft);

    function refreshDirty() {
      const dirty = isDirty();
      dirtyBadge.classList.toggle('hidden', !dirty);
      saveBtn.classList.toggle('btn-primary', dirty);
      chat?.controller.setNotice(dirty ? t('editor.debugUsesSaved') : null);
    }

    function refreshHeader() {
      title.textContent = bot.name;
      mount(badges, statusBadges(bot));
    }

    // --- save, publish, delete
    let saving = null;
    async function save({ quiet = false } = {}) {
      if (saving) return saving;
      settings.clearInvalid();
      const draft = settings.current();
      const problem = settings.check(draft);
      if (problem) {
        settings.showInvalid(problem.message, problem.path);
        return false;
      }
      saveBtn.disabled = true;
      saveBtn.textContent = t('editor.saving');
      saving = (async () => {
        try {
          bot = await api.patch(botPath(bot.id), draft);
          if (!alive) return false;
          // The server normalises (trims, resolves names): show what it kept, unless the
          // person typed more while the request was out.
          if (JSON.stringify(settings.current()) === JSON.stringify(draft)) settings.fill(bot.draft);
          refreshHeader();
          refreshDirty();
          chat?.controller.update({ opening: bot.draft.opening_message, suggestions: bot.draft.suggested_questions, botName: bot.name });
          if (!quiet) toast(t('editor.savedToast'), 'success');
          return true;
        } catch (err) {
          const p = serverProblem(err);
          settings.showInvalid(p.message, p.path);
          return false;
        } finally {
          saveBtn.disabled = false;
          saveBtn.textContent = t('editor.save');
          saving = null;
        }
      })();
      return saving;
    }

    async function publish() {
      publishBtn.disabled = true;
      publishBtn.textContent = t('editor.publishing');
      try {
        if (isDirty() && !(await save({ quiet: true }))) return;
        const v = await api.post(botPath(bot.id) + '/publish');
        toast(t('editor.publishedToast', { n: v.version }), 'success');
        bot = await api.get(botPath(bot.id));
        if (alive) refreshHeader();
      } catch (err) {
        const p = serverProblem(err);
        if (p.path) settings.showInvalid(p.message, p.path);
        else toast(p.message, 'error');
      } finally {
        publishBtn.disabled = false;
        publishBtn.textContent = t('editor.publish');
      }
    }

    async function removeBot() {
      if (!(await confirmDialog(t('common.confirmDelete', { name: bot.name })))) return;
      try {
        await api.del(botPath(bot.id));
        isDirty = () => false;
        toast(t('editor.deleted'), 'success');
        location.hash = '#/bots';
      } catch (err) {
        toast(errorText(err), 'error');
      }
    }

    // --- layout
    chat = debugChat(bot);
    mount(main,
      h('div.breadcrumb', h('a', { href: '#/bots' }, '← ' + t('editor.back'))),
      h('div.page-head.editor-head',
        h('span.avatar', avatarLetter(bot.name)),
        h('div.grow.editor-title', title, h('div.row', badges, dirtyBadge)),
        h('div.row.editor-actions', saveBtn, publishBtn, shareBtn,
          h('button.btn.only-phone', { type: 'button', onclick: () => main.querySelector('.editor-chat')?.scrollIntoView({ behavior: 'smooth' }) }, t('editor.toDebug')))),
      h('div.editor', settings.element, chat.element));

    settings.fill(bot.draft);
    if (stash && stash.botId === bot.id && stash.updatedAt === bot.updated_at) settings.fill(stash.draft);
    stash = null;
    refreshHeader();
    refreshDirty();
    settings.loadKbs();
    window.addEventListener('beforeunload', onUnload);
    keepOnLangSwitch = () => {
      if (isDirty()) stash = { botId: bot.id, updatedAt: bot.updated_at, draft: settings.current() };
    };
    onKey = (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 's') {
        e.preventDefault();
        save();
      }
    };
    document.addEventListener('keydown', onKey);
  }

  load();
  return () => {
    if (langSwitching) keepOnLangSwitch();
    langSwitching = false;
    if (onKey) document.removeEventListener('keydown', onKey);
    alive = false;
    settings?.stop();
    chat?.controller.destroy();
    window.removeEventListener('beforeunload', onUnload);
  };
}
