// The bot editor's settings column: basic facts, persona (with the optimiser), opening
// message, suggested questions, knowledge bases, retrieval, the no-recall reply and the
// model. It reads a draft into the controls and back, checks what the browser can, and
// points at the field a server error names.

import { t } from '../i18n.js';
import { limits } from '../limits.js';
import { errorText, field, h } from '../ui.js';
import { kbPicker } from './knowledge.js';
import { personaOptimizer } from './persona.js';
import { normTools, toolsEditor } from './tools.js';

/** The bounds of a bot's settings, as the server enforces them. */
const LIMITS = limits.bot;

/** Settings paths the server names in its errors, with the label a person sees. */
const FIELD_LABELS = [
  ['retrieval.min_score', 'editor.minScore'], ['retrieval.top_k', 'editor.topK'], ['retrieval.mode', 'editor.mode'],
  ['no_recall.reply', 'editor.noRecallReply'], ['no_recall.mode', 'editor.noRecallMode'],
  ['retrieval.read_tokens', 'editor.readTokens'], ['no_recall.min_answerable', 'editor.minAnswerable'],
  ['model.temperature', 'editor.temperature'], ['model.max_tokens', 'editor.maxTokens'],
  ['model.history_turns', 'editor.historyTurns'], ['suggested_questions', 'editor.questions'],
  ['opening_message', 'editor.opening'], ['knowledge_bases', 'editor.kbs'], ['persona', 'editor.persona'],
  ['description', 'editor.description'], ['name', 'editor.name'], ['tools', 'editor.tools'],
];

/** A refused save or publish as {message, path?}: path when the message names a setting. */
export function serverProblem(err) {
  if (err.status !== 400) return { message: errorText(err) };
  const msg = err.message || '';
  const hit = FIELD_LABELS.find(([path]) => msg.includes(path));
  if (!hit) return { message: t('editor.invalid', { message: msg }) };
  return { path: hit[0], message: t('editor.invalidField', { field: t(hit[1]), message: msg }) };
}

/**
 * The settings form of bot `botId()`. onEdit runs after every edit (and once the knowledge
 * bases are listed), onSubmit on Enter; `foot` goes under the last panel.
 */
export function botSettings({ botId, isAlive, onEdit, onSubmit, foot }) {
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
    quoteFirst: h('input', { type: 'checkbox', 'data-path': 'model.quote_first' }),
  };
  const personaCount = h('span.field-hint.persona-count');
  const minScoreHint = h('span.field-hint');
  const formError = h('div.alert.alert-error.hidden', { role: 'alert' });
  const kbs = kbPicker({ isAlive, onLoaded: onEdit });
  const toolsEd = toolsEditor({ onEdit });
  const optimizer = personaOptimizer({ botId, textarea: c.persona, isAlive });

  function refreshHints() {
    const n = [...c.persona.value].length;
    personaCount.textContent = t('editor.chars', { n, max: LIMITS.persona_chars });
    personaCount.classList.toggle('over', n > LIMITS.persona_chars);
    minScoreHint.textContent = t('editor.minScore.' + c.mode.value);
    c.noRecallReply.closest('.field')?.classList.toggle('muted-field', c.noRecallMode.value !== 'fixed');
    c.minAnswerable.closest('.field')?.classList.toggle('muted-field', c.noRecallMode.value !== 'fixed');
  }

  const panel = (titleText, hint, ...content) => h('section.panel.settings-panel',
    h('div.panel-head', h('h2', titleText)),
    hint ? h('p.field-hint.panel-hint', hint) : null,
    h('div.stack', content));

  const element = h('form.stack.editor-settings', {
    onsubmit: (e) => { e.preventDefault(); onSubmit(); },
    oninput: () => { refreshHints(); onEdit(); },
    onchange: () => { refreshHints(); onEdit(); },
  },
  formError,
  panel(t('editor.basic'), null,
    field(t('editor.name'), c.name),
    field(t('editor.description'), c.description)),
  h('section.panel.settings-panel',
    h('div.panel-head', h('h2', t('editor.persona')), optimizer.button),
    h('p.field-hint.panel-hint', t('editor.personaHint')),
    h('div.stack',
      h('div.field', c.persona, h('div.row', personaCount, h('span.spacer'), optimizer.status)),
      optimizer.suggestion)),
  panel(t('editor.opening'), t('editor.openingHint'), c.opening),
  panel(t('editor.questions'), t('editor.questionsHint', { max: LIMITS.suggested_questions }), c.questions),
  panel(t('editor.kbs'), t('editor.kbsHint'), kbs.element),
  panel(t('editor.tools'), t('editor.toolsHint'), toolsEd.element),
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
    h('label.check', c.rewrite, h('span', t('editor.rewrite'))),
    h('label.check', c.quoteFirst, h('span', t('editor.quoteFirst')))),
  foot);

  /** Show `draft` in the controls. */
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
    c.quoteFirst.checked = draft.model?.quote_first !== false;
    kbs.set(draft.knowledge_bases);
    toolsEd.set(draft.tools);
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
      knowledge_bases: kbs.selected(),
      retrieval: { mode: c.mode.value, top_k: num(c.topK), min_score: num(c.minScore), show_sources: c.showSources.checked, read_tokens: num(c.readTokens) },
      no_recall: { mode: c.noRecallMode.value, reply: c.noRecallReply.value, min_answerable: c.minAnswerable.value.trim() === '' ? null : Number(c.minAnswerable.value) },
      model: { temperature: num(c.temperature), max_tokens: num(c.maxTokens), history_turns: num(c.historyTurns), quote_first: c.quoteFirst.checked },
      rewrite_query: c.rewrite.checked,
      tools: toolsEd.current(),
    };
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
      const input = element.querySelector(`[data-path="${path}"]`);
      const min = input?.min === '' ? -Infinity : Number(input?.min);
      const max = input?.max === '' ? Infinity : Number(input?.max);
      if (v < min || v > max || (input?.step === '1' && !Number.isInteger(v))) {
        return { path, message: t('editor.numberRange', { min: input.min, max: input.max }) };
      }
    }
    if (!s.name) return { path: 'name', message: t('bots.nameRequired') };
    const toolProblem = toolsEd.problem();
    if (toolProblem) return { path: 'tools', message: toolProblem.message };
    return null;
  }

  return {
    element,
    fill,
    current,
    /** Does the form differ from the saved `draft`? */
    differsFrom(draft) {
      return comparable(current()) !== comparable(snapshot(draft));
    },
    /** What is wrong with `draft` as far as the browser can tell, as {path, message}, or null. */
    check(draft) {
      const problem = localProblem(draft);
      if (!problem) return null;
      const label = FIELD_LABELS.find(([p]) => p === problem.path);
      return { path: problem.path, message: label ? t('editor.invalidField', { field: t(label[1]), message: problem.message }) : problem.message };
    },
    clearInvalid() {
      formError.classList.add('hidden');
      for (const x of element.querySelectorAll('[aria-invalid]')) x.removeAttribute('aria-invalid');
    },
    /** Show `message` above the form and mark, scroll to and focus the field at `path`. */
    showInvalid(message, path) {
      formError.textContent = message;
      formError.classList.remove('hidden');
      const target = path ? element.querySelector(`[data-path="${path}"]`) : null;
      if (target) {
        target.setAttribute('aria-invalid', 'true');
        target.scrollIntoView({ behavior: 'smooth', block: 'center' });
        if (target.focus) target.focus({ preventScroll: true });
      } else {
        formError.scrollIntoView({ behavior: 'smooth', block: 'center' });
      }
    },
    loadKbs: kbs.load,
    /** The editor is left: stop what is still running. */
    stop: optimizer.stop,
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
    model: { temperature: n(d.model.temperature), max_tokens: n(d.model.max_tokens), history_turns: n(d.model.history_turns), quote_first: d.model.quote_first !== false },
    rewrite_query: d.rewrite_query,
    tools: d.tools || [],
  };
}

// The order of the checked knowledge bases is the list's, not the draft's: not a change.
// Tools compare in one shape, whichever side they come from.
const comparable = (x) => JSON.stringify({ ...x, knowledge_bases: [...x.knowledge_bases].sort(), tools: normTools(x.tools) });
