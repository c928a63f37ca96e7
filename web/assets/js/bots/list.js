// #/bots: the bots as cards (status, knowledge bases, last change), with the create button.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { empty, failure, formatTime, h, loading, mount } from '../ui.js';
import { avatarLetter, enc, statusBadges } from './common.js';
import { openCreate } from './create.js';

export function renderList(main) {
  let alive = true;
  const body = h('div', loading(t('bots.loading')));
  mount(main,
    h('div.page-head',
      h('div.grow', h('h1', t('bots.title')), h('p.muted.small', { style: { margin: '4px 0 0' } }, t('bots.subtitle'))),
      h('button.btn.btn-primary', { type: 'button', 'data-testid': 'bot-create', onclick: openCreate }, '+ ' + t('bots.create'))),
    body);

  async function load() {
    mount(body, loading(t('bots.loading')));
    try {
      const bots = await api.get('/api/bots');
      if (!alive) return;
      if (!bots.length) {
        mount(body, empty(t('bots.empty'),
          h('button.btn.btn-primary', { type: 'button', onclick: openCreate }, '+ ' + t('bots.create'))));
        return;
      }
      mount(body, h('div.cards', bots.map(botCard)));
    } catch (err) {
      if (alive) mount(body, failure(err, load));
    }
  }
  load();
  return () => { alive = false; };
}

function botCard(bot) {
  return h('a.card.bot-card', {
    href: '#/bots/' + enc(bot.id),
    'data-testid': 'bot-card',
    dataset: { botId: bot.id },
  },
  h('div.card-title', h('span.avatar', avatarLetter(bot.name)), h('span.break.grow', bot.name)),
  h('div.card-desc.break', bot.draft?.description || h('span.faint', t('bots.noDescription'))),
  h('div.row', statusBadges(bot)),
  h('div.card-meta',
    h('span', t('bots.kbCount', { n: bot.draft?.knowledge_bases?.length ?? 0 })),
    h('span', t('bots.updated', { time: formatTime(bot.updated_at) }))));
}
