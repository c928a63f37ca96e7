// What the bot pages share: a bot's address in the API, its status badges and its avatar.

import { t } from '../i18n.js';
import { h } from '../ui.js';

export const enc = encodeURIComponent;
export const botPath = (id) => '/api/bots/' + enc(id);

/** Published (with its version) or draft, and whether the draft has unpublished changes. */
export function statusBadges(bot) {
  return [
    bot.published_version != null
      ? h('span.badge.badge-success', t('bots.published', { n: bot.published_version }))
      : h('span.badge', t('bots.draft')),
    bot.published_version != null && bot.unpublished_changes
      ? h('span.badge.badge-warning', t('bots.unpublished'))
      : null,
  ];
}

export function avatarLetter(name) {
  return (name || '?').trim().charAt(0).toUpperCase() || '?';
}
