// Bots: the list (#/bots) and the Coze-style editor (#/bots/{id}) — settings on the left,
// a debug chat with the saved draft on the right, publishing, and the share/API dialog
// with the bot's API keys.

import { adminToken, api } from './api.js';
import { chatView } from './chatview.js';
import { addStrings, t } from './i18n.js';
import { confirmDialog, copyText, empty, errorText, failure, field, formatTime, h, modal, mount, toast } from './ui.js';

addStrings({
  zh: {
    'bots.title': '机器人',
    'bots.subtitle': '基于知识库回答问题的机器人：编辑人设与召回设置，调试，发布后通过聊天页或 API 使用。',
    'bots.create': '创建机器人',
    'bots.empty': '还没有机器人。创建一个，选择知识库，就能开始问答。',
    'bots.noDescription': '暂无描述',
    'bots.draft': '草稿',
    'bots.published': '已发布 v{n}',
    'bots.unpublished': '有未发布修改',
    'bots.kbCount': '{n} 个知识库',
    'bots.updated': '更新于 {time}',
    'bots.createTitle': '创建机器人',
    'bots.namePlaceholder': '例如：HR 制度助手',
    'bots.descPlaceholder': '这个机器人做什么、给谁用',
    'bots.nameRequired': '请填写名称。',
    'bots.loading': '正在加载机器人…',

    'editor.back': '机器人',
    'editor.save': '保存',
    'editor.saving': '保存中…',
    'editor.publish': '发布',
    'editor.publishing': '发布中…',
    'editor.share': '分享 / API',
    'editor.delete': '删除机器人',
    'editor.unsaved': '有未保存的修改',
    'editor.savedAll': '已保存',
    'editor.savedToast': '已保存草稿',
    'editor.publishedToast': '已发布 v{n}',
    'editor.leaveWarning': '有未保存的修改，确定离开吗？',
    'editor.invalidField': '“{field}”不符合要求：{message}',
    'editor.invalid': '设置不符合要求：{message}',
    'editor.numberRequired': '请填写一个数字。',
    'editor.numberRange': '请填写 {min} 到 {max} 之间的数值。',
    'editor.basic': '基本信息',
    'editor.name': '名称',
    'editor.description': '描述',
    'editor.persona': '人设与回复逻辑',
    'editor.personaHint': '告诉机器人它是谁、为谁服务、怎么回答。会放在系统提示词的最前面。',
    'editor.personaPlaceholder': '例如：你是公司制度助手，用简洁的中文回答员工关于出差、请假、报销的问题……',
    'editor.optimize': '✨ 优化',
    'editor.optimizing': '优化中… {s} 秒',
    'editor.optimizeSlow': '模型正在改写人设，在 CPU 上通常需要 10–60 秒。',
    'editor.suggestion': '优化建议（{s} 秒）',
    'editor.adopt': '采用',
    'editor.discard': '放弃',
    'editor.adopted': '已填入人设，记得保存。',
    'editor.chars': '{n} / {max} 字',
    'editor.opening': '开场白',
    'editor.openingHint': '每个新对话里机器人说的第一句话。',
    'editor.openingPlaceholder': '例如：你好！我是制度助手，可以回答出差、请假、报销相关的问题。',
    'editor.questions': '推荐问题',
    'editor.questionsHint': '每行一个，最多 10 个；新对话开始时展示，点击即可提问。',
    'editor.kbs': '知识库',
    'editor.kbsHint': '回答只依据勾选的知识库。',
    'editor.kbsEmpty': '还没有知识库。',
    'editor.kbsGo': '去创建知识库',
    'editor.kbsLoading': '正在加载知识库…',
    'editor.kbMissing': '已删除的知识库（{id}）',
    'editor.kbDocs': '{docs} 个文档 · {chunks} 个片段',
    'editor.retrieval': '召回设置',
    'editor.mode': '检索方式',
    'editor.mode.hybrid': '混合检索（全文 + 语义）',
    'editor.mode.fulltext': '全文检索（BM25）',
    'editor.mode.semantic': '语义检索（向量）',
    'editor.topK': '召回数量',
    'editor.topKHint': 'top_k：提供给模型的片段数，1–20。',
    'editor.minScore': '最低分数',
    'editor.minScore.hybrid': '混合检索：融合分数已归一化到 0–1，1.0 表示两路检索都排第一，约 0.5 表示只有一路排第一。0 表示不过滤。',
    'editor.minScore.fulltext': '全文检索：BM25 原始分数，没有固定上限，取决于文档和问题。0 表示不过滤。',
    'editor.minScore.semantic': '语义检索：余弦相似度，相关文本通常在 0.8–0.9 之间。0 表示不过滤。',
    'editor.showSources': '在回答下方显示引用来源',
    'editor.noRecall': '无召回回复',
    'editor.noRecallHint': '所有片段都低于最低分数，或模型判断资料回答不了问题时怎么办。',
    'editor.readTokens': '每段阅读长度',
    'editor.readTokensHint': 'read_tokens：每个片段只把与问题最相关的句子（约这么多 token）交给模型，回答更快；0 表示整段。',
    'editor.minAnswerable': '可回答判断阈值',
    'editor.minAnswerableDefault': '模型默认',
    'editor.minAnswerableHint': 'min_answerable：回答前先让模型判断资料里有没有答案，低于这个概率就给出上面的固定回复，不编造。留空用模型的默认值（配置 llm.min_answerable），0 表示不判断；仅“固定回复”时生效。',
    'editor.noRecall.fixed': '固定回复',
    'editor.noRecall.model': '让模型回答',
    'editor.noRecallReply': '回复内容',
    'editor.noRecallReplyHint': '选择“固定回复”时必填。',
    'editor.noRecallMode': '方式',
    'editor.model': '模型设置',
    'editor.temperature': '温度',
    'editor.temperatureHint': 'temperature，0–2，越低越稳定。',
    'editor.maxTokens': '回复长度上限',
    'editor.maxTokensHint': 'max_tokens，1–4096 个 token。',
    'editor.historyTurns': '历史轮数',
    'editor.historyTurnsHint': 'history_turns，0–50 轮上文问答。',
    'editor.rewrite': '多轮改写：根据上文把追问改写成完整问题再检索',
    'editor.debug': '调试与预览',
    'editor.toDebug': '去调试 ↓',
    'editor.newChat': '新对话',
    'editor.debugUsesSaved': '调试使用已保存的设置，当前修改尚未保存。',
    'editor.notFound': '找不到这个机器人。',
    'editor.deleted': '已删除机器人',

    'share.title': '分享与 API',
    'share.notPublished': '这个机器人还没有发布：聊天页和 API 只提供已发布的版本，请先点“发布”。',
    'share.link': '聊天页链接',
    'share.linkHint': '打开链接需要 API 密钥；创建密钥后，链接会带上它（#key=…），拿到链接的人就能直接聊天。',
    'share.linkWithKey': '这个链接带着刚创建的密钥，拿到它的人都能使用这个机器人。',
    'share.copyLink': '复制链接',
    'share.open': '打开',
    'share.keys': 'API 密钥',
    'share.keyName': '密钥名称',
    'share.keyNamePlaceholder': '例如：官网客服',
    'share.keyCreate': '创建密钥',
    'share.keyShownOnce': '密钥只显示这一次，关闭后无法再查看，请立即复制并妥善保存。',
    'share.keyCopied': '复制密钥',
    'share.noKeys': '还没有密钥。',
    'share.prefix': '前缀',
    'share.created': '创建时间',
    'share.lastUsed': '最近使用',
    'share.status': '状态',
    'share.active': '有效',
    'share.revoked': '已吊销',
    'share.revoke': '吊销',
    'share.revokeConfirm': '吊销密钥“{name}”？使用它的聊天页和程序将立即无法访问。',
    'share.revokedToast': '已吊销',
    'share.never': '从未',
    'share.keysLoading': '正在加载密钥…',
    'share.api': 'OpenAI 兼容 API',
    'share.apiHint': '任何 OpenAI SDK 都能调用：base URL 填下面的地址，model 填机器人 ID，API key 填上面创建的密钥。回答额外带 citations 字段。',
    'share.baseUrl': 'Base URL',
    'share.model': 'model（机器人 ID）',
  },
  en: {
    'bots.title': 'Bots',
    'bots.subtitle': 'Bots answer from your knowledge bases: edit the persona and retrieval, debug, then publish for the chat page and the API.',
    'bots.create': 'Create bot',
    'bots.empty': 'No bots yet. Create one, pick knowledge bases, and start asking.',
    'bots.noDescription': 'No description',
    'bots.draft': 'Draft',
    'bots.published': 'Published v{n}',
    'bots.unpublished': 'Unpublished changes',
    'bots.kbCount': '{n} knowledge bases',
    'bots.updated': 'Updated {time}',
    'bots.createTitle': 'Create a bot',
    'bots.namePlaceholder': 'e.g. HR policy helper',
    'bots.descPlaceholder': 'What it does and for whom',
    'bots.nameRequired': 'Please enter a name.',
    'bots.loading': 'Loading bots…',

    'editor.back': 'Bots',
    'editor.save': 'Save',
    'editor.saving': 'Saving…',
    'editor.publish': 'Publish',
    'editor.publishing': 'Publishing…',
    'editor.share': 'Share / API',
    'editor.delete': 'Delete bot',
    'editor.unsaved': 'Unsaved changes',
    'editor.savedAll': 'Saved',
    'editor.savedToast': 'Draft saved',
    'editor.publishedToast': 'Published v{n}',
    'editor.leaveWarning': 'You have unsaved changes. Leave anyway?',
    'editor.invalidField': '“{field}” is not valid: {message}',
    'editor.invalid': 'The settings are not valid: {message}',
    'editor.numberRequired': 'Please enter a number.',
    'editor.numberRange': 'Please enter a value from {min} to {max}.',
    'editor.basic': 'Basics',
    'editor.name': 'Name',
    'editor.description': 'Description',
    'editor.persona': 'Persona & answering rules',
    'editor.personaHint': 'Who the bot is, whom it serves and how it answers. Goes first in the system prompt.',
    'editor.personaPlaceholder': 'e.g. You are the company policy assistant. Answer staff questions about travel, leave and expenses concisely…',
    'editor.optimize': '✨ Improve',
    'editor.optimizing': 'Improving… {s} s',
    'editor.optimizeSlow': 'The model is rewriting the persona; on a CPU this takes 10–60 seconds.',
    'editor.suggestion': 'Suggestion ({s} s)',
    'editor.adopt': 'Use it',
    'editor.discard': 'Discard',
    'editor.adopted': 'Put into the persona. Remember to save.',
    'editor.chars': '{n} / {max} characters',
    'editor.opening': 'Opening message',
    'editor.openingHint': 'The first thing the bot says in every new conversation.',
    'editor.openingPlaceholder': 'e.g. Hi! I can answer questions about travel, leave and expenses.',
    'editor.questions': 'Suggested questions',
    'editor.questionsHint': 'One per line, at most 10; offered at the start of a conversation.',
    'editor.kbs': 'Knowledge bases',
    'editor.kbsHint': 'Answers come only from the checked knowledge bases.',
    'editor.kbsEmpty': 'No knowledge bases yet.',
    'editor.kbsGo': 'Create one',
    'editor.kbsLoading': 'Loading knowledge bases…',
    'editor.kbMissing': 'Deleted knowledge base ({id})',
    'editor.kbDocs': '{docs} documents · {chunks} chunks',
    'editor.retrieval': 'Retrieval',
    'editor.mode': 'Mode',
    'editor.mode.hybrid': 'Hybrid (full text + semantic)',
    'editor.mode.fulltext': 'Full text (BM25)',
    'editor.mode.semantic': 'Semantic (vectors)',
    'editor.topK': 'Passages',
    'editor.topKHint': 'top_k: passages given to the model, 1–20.',
    'editor.minScore': 'Minimum score',
    'editor.minScore.hybrid': 'Hybrid: the fused score is normalised to 0–1; 1.0 is first for both retrievers, ~0.5 first for one only. 0 keeps everything.',
    'editor.minScore.fulltext': 'Full text: the raw BM25 score, with no fixed maximum; it depends on the documents and the question. 0 keeps everything.',
    'editor.minScore.semantic': 'Semantic: cosine similarity; related text is usually 0.8–0.9. 0 keeps everything.',
    'editor.showSources': 'Show the cited sources under answers',
    'editor.noRecall': 'When nothing is found',
    'editor.noRecallHint': 'What happens when every passage scores below the minimum, or the model judges that the passages do not answer.',
    'editor.readTokens': 'Reading length',
    'editor.readTokensHint': 'read_tokens: the model reads only the sentences of each passage closest to the question (about this many tokens), so it answers sooner; 0 reads whole passages.',
    'editor.minAnswerable': 'Answerability threshold',
    'editor.minAnswerableDefault': 'model default',
    'editor.minAnswerableHint': 'min_answerable: before answering, the model judges whether the passages hold the answer; below this probability the bot gives the fixed reply instead of making one up. Empty uses the model\'s default (llm.min_answerable); 0 turns it off. Fixed reply only.',
    'editor.noRecall.fixed': 'Fixed reply',
    'editor.noRecall.model': 'Let the model answer',
    'editor.noRecallReply': 'Reply',
    'editor.noRecallReplyHint': 'Required for a fixed reply.',
    'editor.noRecallMode': 'Behaviour',
    'editor.model': 'Model',
    'editor.temperature': 'Temperature',
    'editor.temperatureHint': '0–2; lower is steadier.',
    'editor.maxTokens': 'Longest answer',
    'editor.maxTokensHint': 'max_tokens, 1–4096 tokens.',
    'editor.historyTurns': 'History turns',
    'editor.historyTurnsHint': 'history_turns: 0–50 earlier exchanges.',
    'editor.rewrite': 'Rewrite follow-up questions into standalone ones before retrieval',
    'editor.debug': 'Debug & preview',
    'editor.toDebug': 'Debug ↓',
    'editor.newChat': 'New chat',
    'editor.debugUsesSaved': 'The debug chat uses the saved settings; your changes are not saved yet.',
    'editor.notFound': 'This bot does not exist.',
    'editor.deleted': 'Bot deleted',

    'share.title': 'Share & API',
    'share.notPublished': 'This bot is not published: the chat page and the API serve only a published version. Click “Publish” first.',
    'share.link': 'Chat page link',
    'share.linkHint': 'The page needs an API key; once you create one, the link carries it (#key=…) so whoever has the link can chat.',
    'share.linkWithKey': 'This link carries the key you just created: anyone with it can use the bot.',
    'share.copyLink': 'Copy link',
    'share.open': 'Open',
    'share.keys': 'API keys',
    'share.keyName': 'Key name',
    'share.keyNamePlaceholder': 'e.g. website helpdesk',
    'share.keyCreate': 'Create key',
    'share.keyShownOnce': 'The key is shown only this once. Copy it now and keep it safe.',
    'share.keyCopied': 'Copy key',
    'share.noKeys': 'No keys yet.',
    'share.prefix': 'Prefix',
    'share.created': 'Created',
    'share.lastUsed': 'Last used',
    'share.status': 'Status',
    'share.active': 'Active',
    'share.revoked': 'Revoked',
    'share.revoke': 'Revoke',
    'share.revokeConfirm': 'Revoke the key “{name}”? Chat pages and programs using it lose access at once.',
    'share.revokedToast': 'Revoked',
    'share.never': 'Never',
    'share.keysLoading': 'Loading keys…',
    'share.api': 'OpenAI-compatible API',
    'share.apiHint': 'Works with any OpenAI SDK: the base URL below, the bot id as model, a key from above as the API key. Answers carry an extra citations field.',
    'share.baseUrl': 'Base URL',
    'share.model': 'model (bot id)',
  },
});

const LIMITS = { persona: 8000 };

function loading(text) {
  return h('div.empty', h('span.spinner'), ' ', text || t('common.loading'));
}

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
  const name = h('input.input', { maxlength: 64, placeholder: t('bots.namePlaceholder'), required: true });
  const description = h('textarea.textarea', { rows: 3, maxlength: 2000, placeholder: t('bots.descPlaceholder') });
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
      name: h('input.input', { maxlength: 64, 'data-path': 'name' }),
      description: h('textarea.textarea', { rows: 2, maxlength: 2000, 'data-path': 'description' }),
      persona: h('textarea.textarea.persona-input', { rows: 14, 'data-testid': 'persona', 'data-path': 'persona', 'aria-label': t('editor.persona'), placeholder: t('editor.personaPlaceholder') }),
      opening: h('textarea.textarea', { rows: 3, 'aria-label': t('editor.opening'), 'data-path': 'opening_message', placeholder: t('editor.openingPlaceholder') }),
      questions: h('textarea.textarea', { rows: 4, 'aria-label': t('editor.questions'), 'data-path': 'suggested_questions' }),
      mode: h('select.select', { 'data-path': 'retrieval.mode' },
        ['hybrid', 'fulltext', 'semantic'].map((m) => h('option', { value: m }, t('editor.mode.' + m)))),
      topK: h('input.input', { type: 'number', min: 1, max: 20, step: 1, 'data-path': 'retrieval.top_k' }),
      minScore: h('input.input', { type: 'number', step: 'any', 'data-path': 'retrieval.min_score' }),
      readTokens: h('input.input', { type: 'number', min: 0, max: 4096, step: 10, 'data-path': 'retrieval.read_tokens' }),
      minAnswerable: h('input.input', { type: 'number', min: 0, max: 1, step: 0.05, placeholder: t('editor.minAnswerableDefault'), 'data-path': 'no_recall.min_answerable' }),
      showSources: h('input', { type: 'checkbox' }),
      noRecallMode: h('select.select', { 'data-path': 'no_recall.mode' },
        ['fixed', 'model'].map((m) => h('option', { value: m }, t('editor.noRecall.' + m)))),
      noRecallReply: h('textarea.textarea', { rows: 2, 'data-path': 'no_recall.reply' }),
      temperature: h('input.input', { type: 'number', min: 0, max: 2, step: 0.1, 'data-path': 'model.temperature' }),
      maxTokens: h('input.input', { type: 'number', min: 1, max: 4096, step: 1, 'data-path': 'model.max_tokens' }),
      historyTurns: h('input.input', { type: 'number', min: 0, max: 50, step: 1, 'data-path': 'model.history_turns' }),
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
      personaCount.textContent = t('editor.chars', { n, max: LIMITS.persona });
      personaCount.classList.toggle('over', n > LIMITS.persona);
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

      const keyName = h('input.input', { maxlength: 64, placeholder: t('share.keyNamePlaceholder'), 'aria-label': t('share.keyName') });
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
    panel(t('editor.questions'), t('editor.questionsHint'), c.questions),
    panel(t('editor.kbs'), t('editor.kbsHint'), kbBox),
    panel(t('editor.retrieval'), null,
      field(t('editor.mode'), c.mode),
      h('div.grid-2', field(t('editor.topK'), c.topK, t('editor.topKHint')), field(t('editor.minScore'), c.minScore)),
      minScoreHint,
      field(t('editor.readTokens'), c.readTokens, t('editor.readTokensHint')),
      h('label.check', c.showSources, h('span', t('editor.showSources')))),
    panel(t('editor.noRecall'), t('editor.noRecallHint'),
      field(t('editor.noRecallMode'), c.noRecallMode),
      field(t('editor.noRecallReply'), c.noRecallReply, t('editor.noRecallReplyHint')),
      field(t('editor.minAnswerable'), c.minAnswerable, t('editor.minAnswerableHint'))),
    panel(t('editor.model'), null,
      h('div.grid-3',
        field(t('editor.temperature'), c.temperature, t('editor.temperatureHint')),
        field(t('editor.maxTokens'), c.maxTokens, t('editor.maxTokensHint')),
        field(t('editor.historyTurns'), c.historyTurns, t('editor.historyTurnsHint'))),
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
