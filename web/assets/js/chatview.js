// The chat box shared by the bot editor's debug chat (bots/debug.js) and the published chat page
// (chat.js): a message log, a composer, answers streamed as they are written, citations,
// and (debug only) what retrieval did.
//
// API
//   import { chatView, showCitation } from './chatview.js';
//
//   const el = chatView({
//     streamUrl,        // POST SSE endpoint: '/api/bots/{id}/chat' or '/api/chat/{id}'
//     token,            // bearer token: a string, or a function returning one (read per send)
//     canShowTrace,     // true: show the 召回详情 trace and timings under each answer
//     opening,          // opening message, shown first in every conversation ('' = none)
//     suggestions,      // suggested questions, offered while the conversation is empty
//     conversationId,   // continue this conversation (null: the first answer starts one)
//     history,          // earlier messages to show: [{role, content, status?, citations?,
//                       //   no_recall?}] or the API's MessageView {role, content, status,
//                       //   context: {citations, no_recall}}
//     botName,          // its first letter is the assistant's avatar
//     placeholder,      // composer placeholder
//     notice,           // text shown above the composer (e.g. "调试使用已保存的设置")
//     onConversation,   // (id | null) → called when a conversation starts and on reset
//     onDone,           // (doneData) → called after each finished answer
//   });
//   parent.append(el);          // el is a div.chat filling its parent's height
//
//   el.controller = {
//     send(text),               // ask a question, as if typed
//     stop(),                   // stop the answer being written
//     reset(),                  // new conversation: clears the log, forgets the id
//     update({opening, suggestions, botName}),  // new welcome (shown when the log is empty)
//     setNotice(text | null),
//     conversationId(),         // the current conversation id or null
//     busy(),                   // whether an answer is streaming
//     destroy(),                // stop streaming; call it when the page goes away
//   }
//
// Stable test hooks: data-testid chat-input, chat-send, chat-stop, answer (each assistant
// bubble, data-state = streaming | done | failed), citation (each [n] chip and source chip),
// trace (the <details>).

import { t } from './i18n.js';
import { limits } from './limits.js';
import { renderAnswer } from './markdown.js';
import { streamChat } from './stream.js';
import { copyText, errorText, h, modal, mount } from './ui.js';

/** Where a cited passage lies: a table's sheet and rows, or its page. */
const placeOf = (c) => c.label || (c.page != null ? t('chat.page', { n: c.page }) : null);

/** The cited passage in a modal. */
export function showCitation(c) {
  const meta = [
    placeOf(c),
    // A table query's citation (chunk 0) has no retrieval score; its snippet is the query.
    typeof c.score === 'number' && c.chunk_id ? t('chat.citationScore', { score: c.score.toFixed(3) }) : null,
  ].filter(Boolean).join(' · ');
  modal({
    title: t('chat.citation', { n: c.marker }),
    body: [
      h('div.stack', { style: { gap: '4px' } },
        h('strong.break', c.document_name || '—'),
        /^https?:\/\//i.test(c.source_url || '')
          ? h('a.small.break', { href: c.source_url, target: '_blank', rel: 'noopener noreferrer', 'data-testid': 'citation-link' }, t('chat.openSource') + ' ↗')
          : null,
        meta ? h('span.muted.small', meta) : null,
        c.inferred ? h('span.badge.badge-warning', { style: { alignSelf: 'flex-start' } }, t('chat.citationInferred')) : null),
      c.chunk_id === 0 ? h('span.muted.small', t('chat.tableQuery')) : null,
      h('div.chunk', h(c.chunk_id === 0 ? 'pre.chunk-text.citation-text.mono' : 'div.chunk-text.citation-text', c.snippet || '')),
    ],
  });
}

/** A row of source chips under an answer. */
export function sourcesRow(citations, onCite = showCitation) {
  if (!citations?.length) return null;
  return h('div.sources', { 'aria-label': t('chat.sources') }, citations.map((c) => h('button.source-chip', {
    type: 'button',
    'data-testid': 'citation',
    title: [c.source_url || c.document_name, placeOf(c)].filter(Boolean).join(' · '),
    onclick: () => onCite(c),
  }, h('span.n', String(c.marker)), h('span.doc', c.document_name || '—'),
  c.label ? h('span.faint', c.label) : c.page != null ? h('span.faint', 'p.' + c.page) : null)));
}

/** An error from the chat stream in words. */
/** JSON text indented to read, anything else as it is. */
function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch (_) {
    return text ?? '';
  }
}

export function chatErrorText(err) {
  if (!err) return '';
  if (!err.code && err instanceof TypeError) return t('error.network');
  if (['overloaded', 'busy', 'model_unavailable', 'llm_failed', 'not_found'].includes(err.code)) {
    return t('chat.err.' + err.code, { message: err.message || '' });
  }
  return errorText(err);
}

const fmt = (n, digits = 3) => (typeof n === 'number' ? (Number.isInteger(n) ? String(n) : n.toFixed(digits)) : '—');

function traceView(trace, timings, usage, judged) {
  const body = [];
  if (judged && (judged.answerable != null || judged.grounding_score != null)) {
    body.push(h('div', h('strong', t('chat.trace.judged') + '：'), t('chat.trace.judgedLine', {
      answerable: fmt(judged.answerable, 2), grounding: fmt(judged.grounding_score, 2),
    })));
  }
  if (trace?.search_verdict != null) {
    body.push(h('div', t('chat.trace.searchVerdict', { p: fmt(trace.search_verdict, 2) })));
  }
  if (trace?.answerable_bar != null) {
    // A follow-up's coverage is measured over the earlier questions it leans on.
    body.push(h('div', t(trace.rewritten_query ? 'chat.trace.barFollowUp' : 'chat.trace.bar', {
      bar: fmt(trace.answerable_bar, 2), coverage: Math.round((trace.question_coverage ?? 1) * 100),
    })));
  }
  if (trace) {
    if (trace.rewritten_query) {
      body.push(h('div', h('strong', t('chat.trace.rewritten') + '：'), h('span.break', trace.rewritten_query)));
    }
    body.push(h('div', t('chat.trace.settings', { mode: trace.mode, top_k: trace.top_k, min_score: trace.min_score }),
      ' · ', t('chat.trace.history', { n: trace.history_turns ?? 0 })));
    if (trace.errors?.length) {
      body.push(h('div.alert.alert-error', h('span.break', t('chat.trace.errors') + '：' + trace.errors.join('；'))));
    }
    if (trace.passages_dropped_for_context) {
      body.push(h('div.alert.alert-warning', t('chat.trace.dropped', { n: trace.passages_dropped_for_context })));
    }
    if (!trace.chunks?.length) body.push(h('div', t('chat.trace.none')));
    for (const c of trace.chunks || []) {
      const score = Math.max(0, Math.min(1, c.score || 0));
      body.push(h('div.chunk',
        h('div.chunk-head',
          c.marker != null ? h('span.badge.badge-info', '[' + c.marker + ']') : h('span.badge', t('chat.trace.unused')),
          h('strong.break', c.document_name || '—'),
          placeOf(c) ? h('span', placeOf(c)) : null,
          h('span', t('chat.trace.fused'), ' ', h('span.score', fmt(c.score)), ' ',
            h('span.score-bar', h('span', { style: { width: (score * 100).toFixed(0) + '%' } }))),
          h('span', t('chat.trace.ranks', { ft: c.ranks?.fulltext ?? '—', sem: c.ranks?.semantic ?? '—' })),
          h('span.score', t('chat.trace.raw', { bm25: fmt(c.raw?.bm25), cos: fmt(c.raw?.cosine) }))),
        h('div.chunk-text', c.text || '')));
    }
  }
  if (timings) {
    body.push(h('div', h('strong', t('chat.trace.timings') + '：'), t('chat.trace.timingLine', {
      retrieval: timings.retrieval_ms ?? 0, queue: timings.queue_ms ?? 0,
      first: timings.first_token_ms ?? 0, gen: timings.generation_ms ?? 0, total: timings.total_ms ?? 0,
      tps: fmt(timings.tokens_per_s, 1),
    })));
  }
  if (usage) {
    body.push(h('div', h('strong', t('chat.trace.usage') + '：'), t('chat.trace.usageLine', {
      prompt: usage.prompt_tokens ?? 0, cached: usage.cached_prompt_tokens ?? 0,
      completion: usage.completion_tokens ?? 0, total: usage.total_tokens ?? 0,
    })));
  }
  if (trace?.prompt?.length) {
    body.push(h('details.trace-prompt',
      h('summary', t('chat.trace.prompt')),
      trace.prompt.map((m) => h('div.chunk', h('div.chunk-head', h('span.badge', m.role)), h('div.chunk-text', m.content)))));
  }
  return h('details.trace', { 'data-testid': 'trace' }, h('summary', t('chat.trace')), h('div.trace-body', body));
}

export function chatView(options = {}) {
  const o = { suggestions: [], opening: '', ...options };
  let conversationId = o.conversationId || null;
  let controller = null; // AbortController of the answer being written
  let notice = o.notice || null;
  let messageCount = 0;

  const tokenOf = () => (typeof o.token === 'function' ? o.token() : o.token) || '';
  const botLetter = () => (o.botName || '知').trim().charAt(0).toUpperCase() || '知';

  const log = h('div.chat-log', { role: 'log', 'aria-live': 'polite' });
  const input = h('textarea.textarea', {
    rows: 1,
    maxlength: limits.question_chars,
    'data-testid': 'chat-input',
    'aria-label': t('chat.input'),
    placeholder: o.placeholder || t('chat.placeholder'),
    oninput: () => grow(),
    onkeydown: (e) => {
      // Enter while an IME is composing picks a candidate; it must not send.
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        submit();
      }
    },
  });
  const sendBtn = h('button.btn.btn-primary', { type: 'button', 'data-testid': 'chat-send', onclick: () => submit() }, t('chat.send'));
  const stopBtn = h('button.btn.hidden', { type: 'button', 'data-testid': 'chat-stop', onclick: () => stop() }, '■ ' + t('chat.stop'));
  const noticeBox = h('div.chat-notice.hidden', { role: 'status' });
  const el = h('div.chat', log, noticeBox, h('div.composer', input, sendBtn, stopBtn));

  function grow() {
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight + 2, 160) + 'px';
  }

  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }
  function scrollDown(force) {
    if (force || nearBottom()) log.scrollTop = log.scrollHeight;
  }

  function setNotice(text) {
    notice = text || null;
    noticeBox.textContent = notice || '';
    noticeBox.classList.toggle('hidden', !notice);
  }

  function setBusy(busy) {
    sendBtn.classList.toggle('hidden', busy);
    stopBtn.classList.toggle('hidden', !busy);
    el.classList.toggle('chat-busy', busy);
  }

  function assistantRow(...body) {
    return h('div.msg', h('div.msg-avatar', { 'aria-hidden': 'true' }, botLetter()), h('div.msg-body', body));
  }

  /** The opening message and suggestions of an empty conversation. */
  function welcome() {
    const parts = [];
    if (o.opening) {
      const bubble = h('div.bubble.opening');
      renderAnswer(bubble, o.opening);
      parts.push(assistantRow(bubble));
    }
    const questions = (o.suggestions || []).filter((q) => q && q.trim());
    if (questions.length && messageCount === 0) {
      parts.push(h('div.chat-suggest', h('div.muted.small', t('chat.tryAsking')),
        h('div.suggestions', questions.map((q) => h('button.suggestion', { type: 'button', onclick: () => send(q) }, q)))));
    }
    if (!parts.length && messageCount === 0) parts.push(h('div.empty.chat-empty', h('p', t('chat.emptyHint'))));
    return h('div.chat-welcome', parts);
  }

  function renderWelcome() {
    const old = log.querySelector('.chat-welcome');
    const fresh = welcome();
    if (old) old.replaceWith(fresh);
    else log.prepend(fresh);
  }

  function userRow(text) {
    return h('div.msg.msg-user', h('div.msg-avatar', { 'aria-hidden': 'true' }, t('chat.me')),
      h('div.msg-body', h('div.bubble', text)));
  }

  function markCites(bubble) {
    for (const chip of bubble.querySelectorAll('.cite')) chip.dataset.testid = 'citation';
  }

  /** Fill an answer's tools, sources and trace after it ends. */
  function finishAnswer(parts, data) {
    const { bubble, tools, extra, steps } = parts;
    // A recorded answer shows the steps it took; a streamed one has shown them already.
    if (!steps.childElementCount) for (const s of data.tool_steps || []) showStepResult(steps, s);
    const citations = data.citations || [];
    renderAnswer(bubble, data.answer || '', citations, showCitation);
    markCites(bubble);
    const answerText = data.answer || '';
    mount(tools, 
      data.no_recall ? h('span.badge.badge-warning', { title: t('chat.noRecallTitle') }, t('chat.noRecall')) : null,
      data.grounded === false && !data.no_recall ? h('span.badge.badge-warning', {
        'data-testid': 'ungrounded', title: t('chat.ungroundedTitle', { score: fmt(data.grounding_score, 2) }),
      }, t('chat.ungrounded')) : null,
      data.finish_reason === 'length' ? h('span.badge.badge-warning', t('chat.lengthCut')) : null,
      citations.some((c) => c.inferred) ? h('span.badge', { title: t('chat.citationInferred') }, t('chat.inferred')) : null,
      // An answer that is its opening quote alone sampled nothing: it has no rate to show.
      o.canShowTrace && data.timings?.first_token_ms > 0 ? h('span', t(data.timings.tokens_per_s > 0 ? 'chat.summary' : 'chat.summaryFirst', {
        first: ((data.timings.first_token_ms || 0) / 1000).toFixed(1), tps: fmt(data.timings.tokens_per_s, 1),
      })) : null,
      answerText ? h('button', { type: 'button', onclick: () => copyText(answerText) }, t('chat.copy')) : null,
    );
    mount(extra, 
      sourcesRow(citations),
      o.canShowTrace && (data.trace || data.timings) ? traceView(data.trace, data.timings, data.usage, data) : null,
    );
  }

  /** The collapsible step of tool call `id` in `steps`, made when first seen. */
  function toolStep(steps, id, name, args) {
    let step = [...steps.children].find((x) => x.dataset.id === id);
    if (step) return step;
    step = h('details.tool-step', { 'data-testid': 'tool-step', 'data-state': 'running', 'data-id': id },
      h('summary', h('span.tool-step-name', t('chat.toolCalling', { name })), h('span.faint.small.tool-step-status', '…')),
      h('div.tool-step-body',
        h('div.faint.small', t('chat.toolArgs')), h('pre.tool-step-pre', prettyJson(args)),
        h('div.tool-step-result')));
    steps.append(step);
    return step;
  }

  /** Step `s` ({id, name, arguments, result, ok, elapsed_ms}) with its result. */
  function showStepResult(steps, s) {
    const step = toolStep(steps, s.id, s.name, s.arguments);
    step.dataset.state = s.ok ? 'ok' : 'failed';
    step.querySelector('.tool-step-name').textContent = t('chat.toolCalled', { name: s.name });
    step.querySelector('.tool-step-status').textContent = s.ok
      ? t('chat.toolOk', { ms: s.elapsed_ms ?? 0 }) : t('chat.toolFailed');
    mount(step.querySelector('.tool-step-result'),
      h('div.faint.small', t('chat.toolResult')), h('pre.tool-step-pre', prettyJson(s.result)));
  }

  function answerParts() {
    const steps = h('div.tool-steps');
    const bubble = h('div.bubble', { 'data-testid': 'answer', 'data-state': 'streaming' });
    const tools = h('div.msg-tools');
    const extra = h('div.answer-extra');
    const row = assistantRow(steps, bubble, extra, tools);
    return { row, bubble, tools, extra, steps };
  }

  async function send(text) {
    const question = (text ?? '').trim();
    if (!question || controller) return;
    messageCount += 1;
    renderWelcome();
    log.append(userRow(question));
    const parts = answerParts();
    const { bubble, tools } = parts;
    bubble.classList.add('typing');
    bubble.append(h('span.muted', t('chat.searching')));
    log.append(parts.row);
    scrollDown(true);

    const abort = new AbortController();
    controller = abort;
    setBusy(true);
    let text_ = '';
    let frame = 0;
    const paint = () => {
      frame = 0;
      const follow = nearBottom();
      renderAnswer(bubble, text_);
      if (follow) scrollDown(true);
    };
    try {
      const done = await streamChat(o.streamUrl, tokenOf(), { message: question, conversation_id: conversationId || undefined }, {
        signal: abort.signal,
        onStart: (d) => {
          if (d?.conversation_id && d.conversation_id !== conversationId) {
            conversationId = d.conversation_id;
            o.onConversation?.(conversationId);
          }
        },
        onToolCall: (call) => {
          toolStep(parts.steps, call.id, call.function?.name, call.function?.arguments);
          scrollDown();
        },
        onToolResult: (step) => showStepResult(parts.steps, step),
        onToken: (piece) => {
          text_ += piece;
          // Markdown is re-rendered at most once a frame, however fast tokens come.
          if (!frame) frame = requestAnimationFrame(paint);
        },
      });
      if (frame) cancelAnimationFrame(frame);
      bubble.classList.remove('typing');
      if (done) {
        bubble.dataset.state = 'done';
        finishAnswer(parts, done);
        o.onDone?.(done);
      } else if (abort.signal.aborted) {
        bubble.dataset.state = 'done';
        renderAnswer(bubble, text_);
        mount(tools, h('span.badge', t('chat.stopped')));
      } else {
        fail(parts, { code: 'cut_off' }, text_, question);
      }
    } catch (err) {
      if (frame) cancelAnimationFrame(frame);
      bubble.classList.remove('typing');
      if (err?.name === 'AbortError') {
        bubble.dataset.state = 'done';
        renderAnswer(bubble, text_);
        mount(tools, h('span.badge', t('chat.stopped')));
      } else {
        fail(parts, err, err?.partial ?? text_, question);
      }
    } finally {
      if (controller === abort) controller = null;
      setBusy(false);
      scrollDown();
    }
  }

  function fail(parts, err, partial, question) {
    const { bubble, tools, extra } = parts;
    bubble.dataset.state = 'failed';
    bubble.classList.add('failed');
    const message = err.code === 'cut_off' ? t('chat.err.cutOff') : chatErrorText(err);
    if (partial) {
      renderAnswer(bubble, partial);
      mount(extra, h('div.alert.alert-error.chat-error', { role: 'alert' },
        h('span.break', message + ' ' + t('chat.err.partialKept'))));
    } else {
      mount(bubble, h('span.chat-error-text.break', { role: 'alert' }, message));
      mount(extra);
    }
    mount(tools, h('button', { type: 'button', onclick: () => send(question) }, t('chat.retry')));
  }

  function stop() {
    controller?.abort();
  }

  function reset() {
    stop();
    controller = null;
    conversationId = null;
    messageCount = 0;
    mount(log);
    renderWelcome();
    setBusy(false);
    o.onConversation?.(null);
  }

  function submit() {
    if (controller) return;
    const text = input.value;
    if (!text.trim()) return;
    input.value = '';
    grow();
    send(text);
  }

  function showHistory(messages) {
    for (const m of messages || []) {
      if (m.role === 'user') {
        messageCount += 1;
        log.append(userRow(m.content));
      } else if (m.role === 'assistant') {
        const parts = answerParts();
        const ctx = (m.context && typeof m.context === 'object') ? m.context : {};
        const data = {
          tool_steps: ctx.tool_steps,
          answer: m.content,
          citations: m.citations ?? ctx.citations ?? [],
          no_recall: m.no_recall ?? ctx.no_recall,
          grounded: ctx.grounded,
          grounding_score: ctx.grounding_score,
          finish_reason: ctx.finish_reason,
        };
        if (m.status === 'failed') {
          parts.bubble.dataset.state = 'failed';
          parts.bubble.classList.add('failed');
          renderAnswer(parts.bubble, m.content || '');
          if (!m.content) parts.bubble.textContent = t('chat.err.llm_failed', { message: ctx.error || '' });
        } else {
          parts.bubble.dataset.state = 'done';
          finishAnswer(parts, data);
          if (m.status === 'interrupted') parts.tools.prepend(h('span.badge', t('chat.stopped')));
        }
        log.append(parts.row);
      }
    }
  }

  showHistory(o.history);
  renderWelcome();
  setNotice(notice);
  requestAnimationFrame(() => scrollDown(true));

  el.controller = {
    send,
    stop,
    reset,
    update({ opening, suggestions, botName } = {}) {
      if (opening !== undefined) o.opening = opening;
      if (suggestions !== undefined) o.suggestions = suggestions;
      if (botName !== undefined) o.botName = botName;
      renderWelcome();
    },
    setNotice,
    conversationId: () => conversationId,
    busy: () => Boolean(controller),
    destroy() { stop(); },
  };
  return el;
}
