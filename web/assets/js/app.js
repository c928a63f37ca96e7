// The workspace: sign-in with the admin token, the sidebar, and a hash router over the
// pages the modules register (kb.js: knowledge bases, bots.js: bots). A page is
// {pattern: RegExp on location.hash, render(main, match) → cleanup?}.

import { adminToken, api, setAdminToken } from './api.js';
import { lang, setLang, t } from './i18n.js';
import { errorText, h, mount } from './ui.js';
import { pages as kbPages } from './kb.js';
import { pages as botPages } from './bots.js';

const pages = [...kbPages, ...botPages];
const root = document.getElementById('app');
let cleanup = null;

function login(message) {
  setAdminToken('');
  const input = h('input.input', { type: 'password', autocomplete: 'current-password', placeholder: t('login.token'), 'aria-label': t('login.token') });
  const status = h('p.form-error', { role: 'alert' }, message || '');
  const form = h('form.login-card', {
    onsubmit: async (e) => {
      e.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      setAdminToken(token);
      try {
        await api.get('/api/kbs');
        if (!location.hash || location.hash === '#/login') location.hash = '#/kbs';
        render();
      } catch (err) {
        setAdminToken('');
        status.textContent = err.status === 401 ? t('login.failed') : errorText(err);
      }
    },
  },
  h('div.brand.brand-large', h('span.brand-mark', '知'), h('span', t('app.name'))),
  h('h1', t('login.title')),
  h('p.muted', t('login.hint')),
  input, status,
  h('button.btn.btn-primary.btn-block', { type: 'submit' }, t('login.submit')),
  h('button.link-btn', { type: 'button', onclick: () => setLang(lang() === 'zh' ? 'en' : 'zh') }, t('lang.switch')));
  mount(root, h('div.login-page', form));
  input.focus();
}

function shell() {
  const link = (hash, label, icon) => h('a.nav-link', { href: hash, class: location.hash.startsWith(hash) ? 'active' : '' }, h('span.nav-icon', icon), h('span', label));
  const main = h('main.main', { id: 'main' });
  mount(root, h('div.layout',
    h('aside.sidebar',
      h('a.brand', { href: '#/kbs' }, h('span.brand-mark', '知'), h('span', t('app.name'))),
      h('nav.nav', link('#/kbs', t('nav.kbs'), '📚'), link('#/bots', t('nav.bots'), '🤖')),
      h('div.sidebar-foot',
        h('button.link-btn', { type: 'button', onclick: () => setLang(lang() === 'zh' ? 'en' : 'zh') }, t('lang.switch')),
        h('button.link-btn', { type: 'button', onclick: () => login() }, t('nav.logout')))),
    main));
  return main;
}

function render() {
  if (typeof cleanup === 'function') cleanup();
  cleanup = null;
  if (!adminToken()) return login();
  if (!location.hash || location.hash === '#/' || location.hash === '#/login') {
    location.replace('#/kbs');
    return;
  }
  const main = shell();
  for (const page of pages) {
    const match = location.hash.match(page.pattern);
    if (match) {
      cleanup = page.render(main, match);
      return;
    }
  }
  mount(main, h('div.empty', h('p', t('page.notFound'))));
}

window.addEventListener('hashchange', render);
window.addEventListener('zhiku:lang', render);
window.addEventListener('zhiku:unauthorized', () => login(t('error.unauthorized')));
document.documentElement.lang = lang() === 'en' ? 'en' : 'zh-CN';
render();
