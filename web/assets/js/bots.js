// Bots: the list (#/bots) and the Coze-style editor (#/bots/{id}) — settings on the left,
// a debug chat with the saved draft on the right, publishing, and the share/API dialog
// with the bot's API keys.

import { adminToken, api } from './api.js';
import { chatView } from './chatview.js';
import { t } from './i18n.js';
import { limits } from './limits.js';
import { confirmDialog, copyText, empty, errorText, failure, field, formatTime, h, loading, modal, mount, toast } from './ui.js';

/** The bounds of a bot's settings, as the server enforces them. */
const LIMITS = limits.bot;

function statusBadges(bot) {
  return [
    bot.published_version != null
      ? h('span.badge.badge-success', t('bots.published', { n: bot.published_version }))
      : h('span.badge', t('bots.draft')),
    bot.published_version != null && bot.unpublished_changes
      ? h('span.badge.badge-warning', t('bots.unpublished'))
      : null,
  ];
}

function avatarLetter(name) {
  return (name || '?').trim().charAt(0).toUpperCase() || '?';
}

// ---------------------------------------------------------------- the list

function createBotDialog() {
  const name = h('input.input', { maxlength: LIMITS.name_chars, placeholder: t('bots.namePlaceholder'), required: true });
  const description = h('textarea.textarea', { rows: 3, maxlength: LIMITS.description_chars, placeholder: t('bots.descPlaceholder') });
  const status = h('p.form-error', { role: 'alert' });
  const create = async () => {
    if (!name.value.trim()) {
      status.textContent = t('bots.nameRequired');
      name.focus();
      return true;
    }
    try {
      const bot = await api.post('/api/bots', { name: name.value.trim(), description: description.value });
      location.hash = '#/bots/' + encodeURIComponent(bot.id);
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

function renderList(main) {
  let alive = true;
  const body = h('div', loading(t('bots.loading')));
  mount(main,
    h('div.page-head',
      h('div.grow', h('h1', t('bots.title')), h('p.muted.small', { style: { margin: '4px 0 0' } }, t('bots.subtitle'))),
      h('button.btn.btn-primary', { type: 'button', 'data-testid': 'bot-create', onclick: createBotDialog }, '+ ' + t('bots.create'))),
    body);

  async function load() {
    mount(body, loading(t('bots.loading')));
    try {
      const bots = await api.get('/api/bots');
      if (!alive) return;
      if (!bots.length) {
        mount(body, empty(t('bots.empty'),
          h('button.btn.btn-primary', { type: 'button', onclick: createBotDialog }, '+ ' + t('bots.create'))));
        return;
      }
      mount(body, h('div.cards', bots.map((bot) => h('a.card.bot-card', {
        href: '#/bots/' + encodeURIComponent(bot.id),
        'data-testid': 'bot-card',
        dataset: { botId: bot.id },
      },
      h('div.card-title', h('span.avatar', avatarLetter(bot.name)), h('span.break.grow', bot.name)),
      h('div.card-desc.break', bot.draft?.description || h('span.faint', t('bots.noDescription'))),
      h('div.row', statusBadges(bot)),
      h('div.card-meta',
        h('span', t('bots.kbCount', { n: bot.draft?.knowledge_bases?.length ?? 0 })),
        h('span', t('bots.updated', { time: formatTime(bot.updated_at) })))))));
    } catch (err) {
      if (alive) mount(body, failure(err, load));
    }
  }
  load();
  return () => { alive = false; };
}

// ---------------------------------------------------------------- the editor

/** Settings paths the server names in its errors, with the label a person sees. */
const FIELD_LABELS = [
  ['retrieval.min_score', 'editor.minScore'], ['retrieval.top_k', 'editor.topK'], ['retrieval.mode', 'editor.mode'],
  ['no_recall.reply', 'editor.noRecallReply'], ['no_recall.mode', 'editor.noRecallMode'],
  ['retrieval.read_tokens', 'editor.readTokens'], ['no_recall.min_answerable', 'editor.minAnswerable'],
  ['model.temperature', 'editor.temperature'], ['model.max_tokens', 'editor.maxTokens'],
  ['model.history_turns', 'editor.historyTurns'], ['suggested_questions', 'editor.questions'],
  ['opening_message', 'editor.opening'], ['knowledge_bases', 'editor.kbs'], ['persona', 'editor.persona'],
  ['description', 'editor.description'], ['name', 'editor.name'],
];

// A language switch re-renders the page; edits not yet saved survive it through here.
// This listener is added when the module loads, before the router's, so it runs first.
let langSwitching = false;
let stash = null; // {botId, updatedAt, draft}
window.addEventListener('zhiku:lang', () => {
  langSwitching = true;
  setTimeout(() => { langSwitching = false; });
});

function renderEditor(main, match) {
  const botId = decodeURIComponent(match[1]);
  let alive = true;
  let chat = null;
  let optimizeAbort = null;
  let lastKey = null; // the key created in this visit, for the chat link
  const onUnload = (e) => { if (isDirty()) { e.preventDefault(); e.returnValue = ''; } };
  let isDirty = () => false;
  let keepOnLangSwitch = () => {};
  let onKey = null;

  mount(main, loading());

  async function load() {
    mount(main, loading());
    let bot;
    try {
      bot = await api.get('/api/bots/' + encodeURIComponent(botId));
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

    // --- controls
    const c = {
      name: h('input.input', { maxlength: LIMITS.name_chars, 'data-path': 'name' }),
      description: h('textarea.textarea', { rows: 2, maxlength: LIMITS.description_chars, 'data-path': 'description' }),
      persona: h('textarea.textarea.persona-input', { rows: 14, 'data-testid': 'persona', 'data-path': 'persona', 'aria-label': t('editor.persona'), placeholder: t('editor.personaPlaceholder') }),
      opening: h('textarea.textarea', { rows: 3, maxlength: LIMITS.opening_chars, 'aria-label': t('editor.opening'), 'data-path': 'opening_message', placeholder: t('editor.openingPlaceholder') }),
      questions: h('textarea.textarea', { rows: 4, 'aria-label': t('editor.questions'), 'data-path': 'suggested_questions' }),
      mode: h('select.select', { 'data-path': 'retrieval.mode' },
        ['hybrid', 'fulltext', 'semantic'].map((m) => h('option', { value: m }, t('editor.mode.' + m)))),
      topK: h('input.input', { type: 'number', min: 1, max: LIMITS.top_k_max, step: 1, 'data-path': 'retrieval.top_k' }),
      minScore: h('input.input', { type: 'number', step: 'any', 'data-path': 'retrieval.min_score' }),
      readTokens: h('input.input', { type: 'number', min: 0, max: LIMITS.read_tokens_max, step: 10, 'data-path': 'retrieval.read_tokens' }),
      minAnswerable: h('input.input', { type: 'number', min: 0, max: 1, step: 0.05, placeholder: t('editor.minAnswerableDefault'), 'data-path': 'no_recall.min_answerable' }),
      showSources: h('input', { type: 'checkbox' }),
      noRecallMode: h('select.select', { 'data-path': 'no_recall.mode' },
        ['fixed', 'model'].map((m) => h('option', { value: m }, t('editor.noRecall.' + m)))),
      noRecallReply: h('textarea.textarea', { rows: 2, maxlength: LIMITS.no_recall_reply_chars, 'data-path': 'no_recall.reply' }),
      temperature: h('input.input', { type: 'number', min: 0, max: LIMITS.temperature_max, step: 0.1, 'data-path': 'model.temperature' }),
      maxTokens: h('input.input', { type: 'number', min: 1, max: LIMITS.max_tokens_max, step: 1, 'data-path': 'model.max_tokens' }),
      historyTurns: h('input.input', { type: 'number', min: 0, max: LIMITS.history_turns_max, step: 1, 'data-path': 'model.history_turns' }),
      rewrite: h('input', { type: 'checkbox' }),
    };
    const personaCount = h('span.field-hint.persona-count');
    const minScoreHint = h('span.field-hint');
    const kbBox = h('div.kb-list', { 'data-path': 'knowledge_bases' }, loading(t('editor.kbsLoading')));
    const formError = h('div.alert.alert-error.hidden', { role: 'alert' });
    const suggestArea = h('div.stack.hidden');
    let kbs = null; // all knowledge bases, once loaded
    let pendingKbs = []; // the selection to show once they are

    // --- header
    const title = h('h1.break');
    const badges = h('span.row');
    const dirtyBadge = h('span.badge.badge-warning.hidden', '● ' + t('editor.unsaved'));
    const saveBtn = h('button.btn', { type: 'button', 'data-testid': 'bot-save', onclick: () => save() }, t('editor.save'));
    const publishBtn = h('button.btn.btn-primary', { type: 'button', 'data-testid': 'bot-publish', onclick: () => publish() }, t('editor.publish'));
    const shareBtn = h('button.btn', { type: 'button', 'data-testid': 'share', onclick: () => shareDialog() }, t('editor.share'));
    const deleteBtn = h('button.btn.btn-ghost.editor-delete', { type: 'button', onclick: () => removeBot() }, t('editor.delete'));

    function fill(draft) {
      c.name.value = draft.name || '';
      c.description.value = draft.description || '';
      c.persona.value = draft.persona || '';
      c.opening.value = draft.opening_message || '';
      c.questions.value = (draft.suggested_questions || []).join('\n');
      c.mode.value = draft.retrieval?.mode || 'hybrid';
      c.topK.value = draft.retrieval?.top_k ?? 3;
      c.minScore.value = draft.retrieval?.min_score ?? 0;
      c.readTokens.value = draft.retrieval?.read_tokens ?? 0;
      c.minAnswerable.value = draft.no_recall?.min_answerable ?? '';
      c.showSources.checked = draft.retrieval?.show_sources !== false;
      c.noRecallMode.value = draft.no_recall?.mode || 'fixed';
      c.noRecallReply.value = draft.no_recall?.reply || '';
      c.temperature.value = draft.model?.temperature ?? 0.3;
      c.maxTokens.value = draft.model?.max_tokens ?? 512;
      c.historyTurns.value = draft.model?.history_turns ?? 4;
      c.rewrite.checked = draft.rewrite_query !== false;
      if (kbs) renderKbs(draft.knowledge_bases || []);
      else pendingKbs = [...(draft.knowledge_bases || [])];
      refreshHints();
    }

    const num = (input) => (input.value.trim() === '' ? NaN : Number(input.value));

    /** The draft as the controls show it. */
    function current() {
      return {
        name: c.name.value.trim(),
        description: c.description.value,
        persona: c.persona.value,
        opening_message: c.opening.value,
        suggested_questions: c.questions.value.split('\n').map((q) => q.trim()).filter(Boolean),
        // Until the list has loaded there are no boxes to read: keep what is saved.
        knowledge_bases: kbs ? [...kbBox.querySelectorAll('input[type=checkbox]:checked')].map((x) => x.value) : [...pendingKbs],
        retrieval: { mode: c.mode.value, top_k: num(c.topK), min_score: num(c.minScore), show_sources: c.showSources.checked, read_tokens: num(c.readTokens) },
        no_recall: { mode: c.noRecallMode.value, reply: c.noRecallReply.value, min_answerable: c.minAnswerable.value.trim() === '' ? null : Number(c.minAnswerable.value) },
        model: { temperature: num(c.temperature), max_tokens: num(c.maxTokens), history_turns: num(c.historyTurns) },
        rewrite_query: c.rewrite.checked,
      };
    }
    /** The saved draft in the shape current() gives, to compare with it. */
    function snapshot(d) {
      const n = (x) => Number(String(x));
      return {
        name: (d.name || '').trim(),
        description: d.description || '',
        persona: d.persona || '',
        opening_message: d.opening_message || '',
        suggested_questions: (d.suggested_questions || []).map((q) => q.trim()).filter(Boolean),
        knowledge_bases: [...(d.knowledge_bases || [])],
        retrieval: { mode: d.retrieval.mode, top_k: n(d.retrieval.top_k), min_score: n(d.retrieval.min_score), show_sources: d.retrieval.show_sources, read_tokens: n(d.retrieval.read_tokens) },
        no_recall: { mode: d.no_recall.mode, reply: d.no_recall.reply, min_answerable: d.no_recall.min_answerable ?? null },
        model: { temperature: n(d.model.temperature), max_tokens: n(d.model.max_tokens), history_turns: n(d.model.history_turns) },
        rewrite_query: d.rewrite_query,
      };
    }
    // The order of the checked knowledge bases is the list's, not the draft's: not a change.
    const comparable = (x) => JSON.stringify({ ...x, knowledge_bases: [...x.knowledge_bases].sort() });
    isDirty = () => comparable(current()) !== comparable(snapshot(bot.draft));

    function refreshHints() {
      const n = [...c.persona.value].length;
      personaCount.textContent = t('editor.chars', { n, max: LIMITS.persona_chars });
      personaCount.classList.toggle('over', n > LIMITS.persona_chars);
      minScoreHint.textContent = t('editor.minScore.' + c.mode.value);
      c.noRecallReply.closest('.field')?.classList.toggle('muted-field', c.noRecallMode.value !== 'fixed');
      c.minAnswerable.closest('.field')?.classList.toggle('muted-field', c.noRecallMode.value !== 'fixed');
    }

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

    function renderKbs(selected) {
      if (!kbs) return;
      const known = new Set(kbs.map((k) => k.id));
      const missing = selected.filter((id) => !known.has(id));
      const box = (id, label, meta) => h('label.check.kb-option',
        h('input', { type: 'checkbox', value: id, checked: selected.includes(id), 'data-testid': 'kb-checkbox' }),
        h('span.grow', h('span.break', label), meta ? h('span.faint.small', ' · ' + meta) : null));
      if (!kbs.length && !missing.length) {
        mount(kbBox, h('div.muted', t('editor.kbsEmpty'), ' ', h('a', { href: '#/kbs' }, t('editor.kbsGo'))));
        return;
      }
      mount(kbBox,
        kbs.map((k) => box(k.id, k.name, t('editor.kbDocs', { docs: k.document_count ?? 0, chunks: k.chunk_count ?? 0 }))),
        missing.map((id) => box(id, t('editor.kbMissing', { id }))));
    }

    async function loadKbs() {
      mount(kbBox, loading(t('editor.kbsLoading')));
      try {
        const list = await api.get('/api/kbs');
        if (!alive) return;
        kbs = list;
        renderKbs(pendingKbs);
        refreshDirty();
      } catch (err) {
        if (alive) mount(kbBox, failure(err, loadKbs));
      }
    }

    // --- validation and errors
    function clearInvalid() {
      formError.classList.add('hidden');
      for (const x of main.querySelectorAll('[aria-invalid]')) x.removeAttribute('aria-invalid');
    }

    function showInvalid(message, path) {
      formError.textContent = message;
      formError.classList.remove('hidden');
      const target = path ? main.querySelector(`[data-path="${path}"]`) : null;
      if (target) {
        target.setAttribute('aria-invalid', 'true');
        target.scrollIntoView({ behavior: 'smooth', block: 'center' });
        if (target.focus) target.focus({ preventScroll: true });
      } else {
        formError.scrollIntoView({ behavior: 'smooth', block: 'center' });
      }
    }

    /** Numbers the browser could not read, found before the server is asked. */
    function localProblem(s) {
      const checks = [['retrieval.top_k', s.retrieval.top_k], ['retrieval.min_score', s.retrieval.min_score],
        ['retrieval.read_tokens', s.retrieval.read_tokens],
        ['model.temperature', s.model.temperature], ['model.max_tokens', s.model.max_tokens],
        ['model.history_turns', s.model.history_turns]];
      for (const [path, v] of checks) {
        if (!Number.isFinite(v)) return { path, message: t('editor.numberRequired') };
        // The inputs carry the server's limits; checking here spares a round trip.
        const input = main.querySelector(`[data-path="${path}"]`);
        const min = input?.min === '' ? -Infinity : Number(input?.min);
        const max = input?.max === '' ? Infinity : Number(input?.max);
        if (v < min || v > max || (input?.step === '1' && !Number.isInteger(v))) {
          return { path, message: t('editor.numberRange', { min: input.min, max: input.max }) };
        }
      }
      if (!s.name) return { path: 'name', message: t('bots.nameRequired') };
      return null;
    }

    function serverProblem(err) {
      if (err.status !== 400) return { message: errorText(err) };
      const msg = err.message || '';
      const hit = FIELD_LABELS.find(([path]) => msg.includes(path));
      if (!hit) return { message: t('editor.invalid', { message: msg }) };
      return { path: hit[0], message: t('editor.invalidField', { field: t(hit[1]), message: msg }) };
    }

    // --- save, publish, delete
    let saving = null;
    async function save({ quiet = false } = {}) {
      if (saving) return saving;
      clearInvalid();
      const draft = current();
      const problem = localProblem(draft);
      if (problem) {
        const label = FIELD_LABELS.find(([p]) => p === problem.path);
        showInvalid(label ? t('editor.invalidField', { field: t(label[1]), message: problem.message }) : problem.message, problem.path);
        return false;
      }
      saveBtn.disabled = true;
      saveBtn.textContent = t('editor.saving');
      saving = (async () => {
        try {
          bot = await api.patch('/api/bots/' + encodeURIComponent(bot.id), draft);
          if (!alive) return false;
          // The server normalises (trims, resolves names): show what it kept, unless the
          // person typed more while the request was out.
          if (JSON.stringify(current()) === JSON.stringify(draft)) fill(bot.draft);
          refreshHeader();
          refreshDirty();
          chat?.controller.update({ opening: bot.draft.opening_message, suggestions: bot.draft.suggested_questions, botName: bot.name });
          if (!quiet) toast(t('editor.savedToast'), 'success');
          return true;
        } catch (err) {
          const p = serverProblem(err);
          showInvalid(p.message, p.path);
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
        const v = await api.post('/api/bots/' + encodeURIComponent(bot.id) + '/publish');
        toast(t('editor.publishedToast', { n: v.version }), 'success');
        bot = await api.get('/api/bots/' + encodeURIComponent(bot.id));
        if (alive) refreshHeader();
      } catch (err) {
        const p = serverProblem(err);
        if (p.path) showInvalid(p.message, p.path);
        else toast(p.message, 'error');
      } finally {
        publishBtn.disabled = false;
        publishBtn.textContent = t('editor.publish');
      }
    }

    async function removeBot() {
      if (!(await confirmDialog(t('common.confirmDelete', { name: bot.name })))) return;
      try {
        await api.del('/api/bots/' + encodeURIComponent(bot.id));
        isDirty = () => false;
        toast(t('editor.deleted'), 'success');
        location.hash = '#/bots';
      } catch (err) {
        toast(errorText(err), 'error');
      }
    }

    // --- persona optimiser
    const optimizeBtn = h('button.btn.btn-small', { type: 'button', 'data-testid': 'persona-optimize', onclick: () => optimize() }, t('editor.optimize'));
    const optimizeStatus = h('span.muted.small', { role: 'status', 'aria-live': 'polite' });

    async function optimize() {
      const abort = new AbortController();
      optimizeAbort = abort;
      optimizeBtn.disabled = true;
      suggestArea.classList.add('hidden');
      const started = Date.now();
      const tick = () => {
        const s = Math.round((Date.now() - started) / 1000);
        optimizeBtn.textContent = t('editor.optimizing', { s });
      };
      tick();
      optimizeStatus.textContent = t('editor.optimizeSlow');
      const timer = setInterval(tick, 1000);
      try {
        const r = await api.post('/api/bots/' + encodeURIComponent(bot.id) + '/optimize-persona', { persona: c.persona.value }, { signal: abort.signal });
        if (!alive) return;
        const seconds = Math.round((r.timings_ms ?? Date.now() - started) / 1000);
        mount(suggestArea,
          h('div.field-label', t('editor.suggestion', { s: seconds })),
          h('div.suggest-box.break', r.persona),
          h('div.row',
            h('button.btn.btn-primary.btn-small', {
              type: 'button',
              onclick: () => {
                c.persona.value = r.persona;
                c.persona.dispatchEvent(new Event('input', { bubbles: true }));
                suggestArea.classList.add('hidden');
                toast(t('editor.adopted'));
              },
            }, t('editor.adopt')),
            h('button.btn.btn-small', { type: 'button', onclick: () => suggestArea.classList.add('hidden') }, t('editor.discard'))));
        suggestArea.classList.remove('hidden');
        suggestArea.scrollIntoView({ behavior: 'smooth', block: 'nearest' });
      } catch (err) {
        if (err.name === 'AbortError' || !alive) return;
        mount(suggestArea, failure(err, () => optimize()));
        suggestArea.classList.remove('hidden');
      } finally {
        clearInterval(timer);
        if (optimizeAbort === abort) optimizeAbort = null;
        optimizeBtn.disabled = false;
        optimizeBtn.textContent = t('editor.optimize');
        optimizeStatus.textContent = '';
      }
    }

    // --- share / API dialog
    function shareDialog() {
      const id = bot.id;
      const pageUrl = () => `${location.origin}/chat/${encodeURIComponent(id)}` + (lastKey ? '#key=' + lastKey : '');
      const linkInput = h('input.input.mono', { readonly: true, 'aria-label': t('share.link'), onfocus: (e) => e.target.select() });
      const openLink = h('a.btn', { target: '_blank', rel: 'noopener' }, t('share.open'));
      const linkHint = h('span.field-hint');
      const refreshLink = () => {
        linkInput.value = pageUrl();
        openLink.href = pageUrl();
        linkHint.textContent = lastKey ? t('share.linkWithKey') : t('share.linkHint');
      };
      refreshLink();

      const keyName = h('input.input', { maxlength: LIMITS.name_chars, placeholder: t('share.keyNamePlaceholder'), 'aria-label': t('share.keyName') });
      const keyError = h('p.form-error', { role: 'alert' });
      const shown = h('div.stack.hidden', { style: { gap: '8px' } });
      const keyList = h('div', loading(t('share.keysLoading')));
      const createBtn = h('button.btn.btn-primary', { type: 'button', 'data-testid': 'key-create', onclick: () => createKey() }, t('share.keyCreate'));

      async function createKey() {
        keyError.textContent = '';
        const name = keyName.value.trim() || 'default';
        createBtn.disabled = true;
        try {
          const k = await api.post('/api/bots/' + encodeURIComponent(id) + '/keys', { name });
          lastKey = k.key;
          keyName.value = '';
          mount(shown,
            h('div.alert.alert-warning', { role: 'alert' }, '⚠ ' + t('share.keyShownOnce')),
            h('div.row.key-row', h('code.key-shown.grow', { 'data-testid': 'key-value' }, k.key),
              h('button.btn.btn-small', { type: 'button', onclick: () => copyText(k.key) }, t('share.keyCopied'))));
          shown.classList.remove('hidden');
          refreshLink();
          listKeys();
        } catch (err) {
          keyError.textContent = errorText(err);
        } finally {
          createBtn.disabled = false;
        }
      }

      async function listKeys() {
        try {
          const keys = await api.get('/api/bots/' + encodeURIComponent(id) + '/keys');
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
                    await api.del('/api/bots/' + encodeURIComponent(id) + '/keys/' + encodeURIComponent(k.id));
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

      const base = `${location.origin}/v1`;
      const keyText = '<API_KEY>';
      const python = `from openai import OpenAI

client = OpenAI(base_url="${base}", api_key="${keyText}")
r = client.chat.completions.create(
    model="${id}",
    messages=[{"role": "user", "content": "出差住宿标准是多少？"}],
)
print(r.choices[0].message.content)`;
      const curl = `curl ${base}/chat/completions \\
  -H "Authorization: Bearer ${keyText}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "${id}", "stream": true,
       "messages": [{"role": "user", "content": "你好"}]}'`;
      const copyRow = (label, value) => field(label, h('div.row.copy-row',
        h('input.input.mono.grow', { readonly: true, value, 'aria-label': label, onfocus: (e) => e.target.select() }),
        h('button.btn.btn-small', { type: 'button', onclick: () => copyText(value) }, t('common.copy'))));
      const snippet = (code) => h('div.code-block', h('button.btn.btn-small.code-copy', { type: 'button', onclick: () => copyText(code) }, t('common.copy')), h('pre', h('code', code)));

      modal({
        title: t('share.title'),
        wide: true,
        body: [
          bot.published_version == null ? h('div.alert.alert-warning', t('share.notPublished')) : null,
          h('section.share-section',
            h('h3', t('share.link')),
            h('div.row.copy-row', linkInput,
              h('button.btn', { type: 'button', onclick: () => copyText(pageUrl()) }, t('share.copyLink')), openLink),
            linkHint),
          h('section.share-section',
            h('h3', t('share.keys')),
            h('form.row.key-form', { onsubmit: (e) => { e.preventDefault(); createKey(); } }, h('div.grow', keyName), createBtn),
            keyError, shown, keyList),
          h('section.share-section',
            h('h3', t('share.api')),
            h('p.muted.small', t('share.apiHint')),
            h('div.grid-2', copyRow(t('share.baseUrl'), base), copyRow(t('share.model'), id)),
            snippet(python), snippet(curl)),
        ],
      });
    }

    // --- layout
    const panel = (titleText, hint, ...content) => h('section.panel.settings-panel',
      h('div.panel-head', h('h2', titleText)),
      hint ? h('p.field-hint.panel-hint', hint) : null,
      h('div.stack', content));

    const settings = h('form.stack.editor-settings', {
      onsubmit: (e) => { e.preventDefault(); save(); },
      oninput: () => { refreshHints(); refreshDirty(); },
      onchange: () => { refreshHints(); refreshDirty(); },
    },
    formError,
    panel(t('editor.basic'), null,
      field(t('editor.name'), c.name),
      field(t('editor.description'), c.description)),
    h('section.panel.settings-panel',
      h('div.panel-head', h('h2', t('editor.persona')), optimizeBtn),
      h('p.field-hint.panel-hint', t('editor.personaHint')),
      h('div.stack',
        h('div.field', c.persona, h('div.row', personaCount, h('span.spacer'), optimizeStatus)),
        suggestArea)),
    panel(t('editor.opening'), t('editor.openingHint'), c.opening),
    panel(t('editor.questions'), t('editor.questionsHint', { max: LIMITS.suggested_questions }), c.questions),
    panel(t('editor.kbs'), t('editor.kbsHint'), kbBox),
    panel(t('editor.retrieval'), null,
      field(t('editor.mode'), c.mode),
      h('div.grid-2', field(t('editor.topK'), c.topK, t('editor.topKHint', { max: LIMITS.top_k_max })), field(t('editor.minScore'), c.minScore)),
      minScoreHint,
      field(t('editor.readTokens'), c.readTokens, t('editor.readTokensHint')),
      h('label.check', c.showSources, h('span', t('editor.showSources')))),
    panel(t('editor.noRecall'), t('editor.noRecallHint'),
      field(t('editor.noRecallMode'), c.noRecallMode),
      field(t('editor.noRecallReply'), c.noRecallReply, t('editor.noRecallReplyHint')),
      field(t('editor.minAnswerable'), c.minAnswerable, t('editor.minAnswerableHint'))),
    panel(t('editor.model'), null,
      h('div.grid-3',
        field(t('editor.temperature'), c.temperature, t('editor.temperatureHint', { max: LIMITS.temperature_max })),
        field(t('editor.maxTokens'), c.maxTokens, t('editor.maxTokensHint', { max: LIMITS.max_tokens_max })),
        field(t('editor.historyTurns'), c.historyTurns, t('editor.historyTurnsHint', { max: LIMITS.history_turns_max }))),
      h('label.check', c.rewrite, h('span', t('editor.rewrite')))),
    h('div.row.editor-foot', h('span.spacer'), deleteBtn));

    chat = chatView({
      streamUrl: '/api/bots/' + encodeURIComponent(bot.id) + '/chat',
      token: adminToken,
      canShowTrace: true,
      opening: bot.draft.opening_message,
      suggestions: bot.draft.suggested_questions,
      botName: bot.name,
    });

    mount(main,
      h('div.breadcrumb', h('a', { href: '#/bots' }, '← ' + t('editor.back'))),
      h('div.page-head.editor-head',
        h('span.avatar', avatarLetter(bot.name)),
        h('div.grow.editor-title', title, h('div.row', badges, dirtyBadge)),
        h('div.row.editor-actions', saveBtn, publishBtn, shareBtn,
          h('button.btn.only-phone', { type: 'button', onclick: () => main.querySelector('.editor-chat')?.scrollIntoView({ behavior: 'smooth' }) }, t('editor.toDebug')))),
      h('div.editor',
        settings,
        h('section.panel.editor-chat',
          h('div.panel-head', h('h2', t('editor.debug')),
            h('button.btn.btn-small', { type: 'button', onclick: () => chat.controller.reset() }, '+ ' + t('editor.newChat'))),
          chat)));

    fill(bot.draft);
    if (stash && stash.botId === bot.id && stash.updatedAt === bot.updated_at) fill(stash.draft);
    stash = null;
    refreshHeader();
    refreshDirty();
    loadKbs();
    window.addEventListener('beforeunload', onUnload);
    keepOnLangSwitch = () => {
      if (isDirty()) stash = { botId: bot.id, updatedAt: bot.updated_at, draft: current() };
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
    optimizeAbort?.abort();
    chat?.controller.destroy();
    window.removeEventListener('beforeunload', onUnload);
  };
}

export const pages = [
  { pattern: /^#\/bots\/?$/, render: renderList },
  { pattern: /^#\/bots\/([^/?#]+)\/?$/, render: renderEditor },
];
