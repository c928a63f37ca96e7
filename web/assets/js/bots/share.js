// The share / API dialog of a bot: the chat page's link (with the key created in this
// visit, if any), the bot's API keys (keys.js), and how to call it as an OpenAI model.

import { t } from '../i18n.js';
import { copyText, field, h, modal } from '../ui.js';
import { keysSection } from './keys.js';

/** `visit.key` is the key created while the editor is open, for the chat link; a new one replaces it. */
export function openShare(bot, visit) {
  const id = bot.id;
  const pageUrl = () => `${location.origin}/chat/${encodeURIComponent(id)}` + (visit.key ? '#key=' + visit.key : '');
  const linkInput = h('input.input.mono', { readonly: true, 'aria-label': t('share.link'), onfocus: (e) => e.target.select() });
  const openLink = h('a.btn', { target: '_blank', rel: 'noopener' }, t('share.open'));
  const linkHint = h('span.field-hint');
  const refreshLink = () => {
    linkInput.value = pageUrl();
    openLink.href = pageUrl();
    linkHint.textContent = visit.key ? t('share.linkWithKey') : t('share.linkHint');
  };
  refreshLink();

  const keys = keysSection(id, (key) => {
    visit.key = key;
    refreshLink();
  });

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
      keys,
      h('section.share-section',
        h('h3', t('share.api')),
        h('p.muted.small', t('share.apiHint')),
        h('div.grid-2', copyRow(t('share.baseUrl'), base), copyRow(t('share.model'), id)),
        snippet(python), snippet(curl)),
    ],
  });
}
