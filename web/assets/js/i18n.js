// Chinese by default, English on request. The strings of the whole UI are in one file per
// language, lang/zh.js and lang/en.js, under the same keys; t('key', {n: 3}) fills {n}. The
// choice is kept in localStorage and a change re-renders the page ('zhiku:lang' event).

import en from './lang/en.js';
import zh from './lang/zh.js';

const LANG_KEY = 'zhiku.lang';
const strings = { zh, en };

export function lang() {
  return localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'zh';
}

export function setLang(value) {
  localStorage.setItem(LANG_KEY, value === 'en' ? 'en' : 'zh');
  document.documentElement.lang = lang() === 'en' ? 'en' : 'zh-CN';
  window.dispatchEvent(new CustomEvent('zhiku:lang'));
}

export function t(key, vars) {
  let text = strings[lang()][key] ?? strings.zh[key] ?? key;
  if (vars) for (const [k, v] of Object.entries(vars)) text = text.replaceAll('{' + k + '}', String(v));
  return text;
}
