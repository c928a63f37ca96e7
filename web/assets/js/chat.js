// The chat page of a published bot (/chat/{bot}): what a team member opens from a shared
// link. The link carries the bot's API key in its fragment (#key=…, never sent to the
// server in the URL); it is kept in this browser and removed from the address bar. Shows the
// bot's opening message and suggested questions, the person's conversations, and answers
// with citations, through the shared chat view.

import { request } from './api.js';
import { chatView } from './chatview.js';
import { lang, setLang, t } from './i18n.js';
import { errorText, formatTime, h, mount } from './ui.js';

const root = document.getElementById('chat-app');
const botId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
const keyName = 'zhiku.key.' + botId;

function takeKeyFromLink() {
  const match = location.hash.match(/key=([^&]+)/);
  if (match) {
    localStorage.setItem(keyName, decodeURIComponent(match[1]));
    history.replaceState(null, '', location.pathname);
  }
}

const key = () => localStorage.getItem(keyName) || '';
const call = (path) => request('GET', path, undefined, { token: key() });

function askForKey(message) {
  const input = h('input.input', { type: 'password', placeholder: t('page.key'), 'aria-label': t('page.key') });
  const form = h('form.login-card', {
    onsubmit: (e) => {
      e.preventDefault();
      if (!input.value.trim()) return;
      localStorage.setItem(keyName, input.value.trim());
      start();
    },
  },
  h('div.brand.brand-large', h('span.brand-mark', '知'), h('span', t('app.name'))),
  h('h1', t('page.keyTitle')),
  h('p.muted', t('page.keyHint')),
  message ? h('p.form-error', { role: 'alert' }, message) : null,
  input,
  h('button.btn.btn-primary.btn-block', { type: 'submit' }, t('page.open')),
  h('button.link-btn', { type: 'button', onclick: () => setLang(lang() === 'zh' ? 'en' : 'zh') }, t('lang.switch')));
  mount(root, h('div.login-page', form));
  input.focus();
}

let view = null;

async function start() {
  if (!key()) return askForKey();
  mount(root, h('div.empty', h('span.spinner'), ' ', t('common.loading')));
  let card;
  try {
    card = await call(`/api/chat/${encodeURIComponent(botId)}`);
  } catch (err) {
    if (err.status === 401) {
      localStorage.removeItem(keyName);
      return askForKey(t('page.badKey'));
    }
    if (err.status === 404) return mount(root, h('div.login-page', h('div.login-card', h('h1', '🤖'), h('p', t('page.notPublished')))));
    return mount(root, h('div.login-page', h('div.login-card', h('p.form-error', errorText(err)),
      h('button.btn', { type: 'button', onclick: start }, t('common.retry')))));
  }
  document.title = card.name + ' · ' + t('app.name');
  layout(card);
}

function layout(card) {
  const list = h('nav.conv-list', { 'aria-label': t('page.history') });
  const holder = h('div.grow', { style: { minHeight: '0', display: 'flex', flexDirection: 'column' } });
  const toggle = () => list.classList.toggle('open');
  const main = h('div.chat-main',
    h('header.chat-head',
      h('button.icon-btn.only-phone', { type: 'button', 'aria-label': t('page.menu'), onclick: toggle }, '☰'),
      h('span.avatar', (card.name || '?').slice(0, 1).toUpperCase()),
      h('h1', card.name),
      h('button.link-btn', { type: 'button', onclick: () => setLang(lang() === 'zh' ? 'en' : 'zh') }, t('lang.switch'))),
    holder);
  mount(root, h('div.chat-page', list, main));

  const open = (conversationId, history) => {
    view?.controller?.destroy();
    view = chatView({
      streamUrl: `/api/chat/${encodeURIComponent(botId)}`,
      token: key,
      canShowTrace: false,
      opening: card.opening_message,
      suggestions: card.suggested_questions,
      conversationId,
      history,
      botName: card.name,
      onConversation: () => refresh(),
    });
    mount(holder, view);
    list.classList.remove('open');
  };

  const refresh = async () => {
    let conversations = [];
    try {
      conversations = await call(`/api/chat/${encodeURIComponent(botId)}/conversations`);
    } catch (err) {
      mount(list, h('p.form-error', errorText(err)));
      return;
    }
    const current = view?.controller?.conversationId();
    mount(list,
      h('button.btn.btn-primary.btn-block', { type: 'button', onclick: () => open(null, []) }, '＋ ' + t('page.newChat')),
      h('div.faint.small', { style: { padding: '8px 4px 0' } }, t('page.history')),
      conversations.length ? conversations.map((c) => h('button.conv-item', {
        type: 'button',
        class: c.id === current ? 'active' : '',
        title: (c.title || t('page.newChat')) + ' · ' + formatTime(c.updated_at),
        onclick: () => select(c.id),
      }, c.title || t('page.newChat'))) : h('p.faint.small', { style: { padding: '0 4px' } }, t('page.noHistory')),
      h('div.spacer'),
      h('p.faint.small', { style: { padding: '0 4px', margin: '0' } }, t('page.poweredBy')));
  };

  const select = async (id) => {
    try {
      const detail = await call(`/api/chat/${encodeURIComponent(botId)}/conversations/${encodeURIComponent(id)}`);
      open(id, detail.messages || []);
      refresh();
    } catch (err) {
      mount(holder, h('div.alert.alert-error', { role: 'alert' }, t('page.loadFailed', { message: errorText(err) })));
    }
  };

  open(null, []);
  refresh();
}

takeKeyFromLink();
document.documentElement.lang = lang() === 'en' ? 'en' : 'zh-CN';
window.addEventListener('zhiku:lang', start);
start();
