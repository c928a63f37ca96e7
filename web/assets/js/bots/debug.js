// The bot editor's debug chat: the shared chat view (chatview.js) talking to the saved
// draft, with the retrieval trace, and a button that starts a new conversation.

import { adminToken } from '../api.js';
import { chatView } from '../chatview.js';
import { t } from '../i18n.js';
import { h } from '../ui.js';
import { botPath } from './common.js';

export function debugChat(bot) {
  const chat = chatView({
    streamUrl: botPath(bot.id) + '/chat',
    token: adminToken,
    canShowTrace: true,
    opening: bot.draft.opening_message,
    suggestions: bot.draft.suggested_questions,
    botName: bot.name,
  });
  const element = h('section.panel.editor-chat',
    h('div.panel-head', h('h2', t('editor.debug')),
      h('button.btn.btn-small', { type: 'button', onclick: () => chat.controller.reset() }, '+ ' + t('editor.newChat'))),
    chat);
  return { element, controller: chat.controller };
}
