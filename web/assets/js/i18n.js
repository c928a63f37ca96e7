// Chinese by default, English on request. Each module adds its own strings with
// addStrings({zh: {...}, en: {...}}); t('key', {n: 3}) fills {n}. The choice is kept in
// localStorage and a change re-renders the page ('zhiku:lang' event).

const LANG_KEY = 'zhiku.lang';
const strings = { zh: {}, en: {} };

export function lang() {
  return localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'zh';
}

export function setLang(value) {
  localStorage.setItem(LANG_KEY, value === 'en' ? 'en' : 'zh');
  document.documentElement.lang = lang() === 'en' ? 'en' : 'zh-CN';
  window.dispatchEvent(new CustomEvent('zhiku:lang'));
}

export function addStrings(dict) {
  for (const l of ['zh', 'en']) Object.assign(strings[l], dict[l] || {});
}

export function t(key, vars) {
  let text = strings[lang()][key] ?? strings.zh[key] ?? key;
  if (vars) for (const [k, v] of Object.entries(vars)) text = text.replaceAll('{' + k + '}', String(v));
  return text;
}

addStrings({
  zh: {
    'app.name': '知库',
    'common.save': '保存', 'common.cancel': '取消', 'common.delete': '删除', 'common.create': '创建',
    'common.close': '关闭', 'common.confirm': '确定', 'common.edit': '编辑', 'common.loading': '加载中…',
    'common.empty': '暂无内容', 'common.search': '搜索', 'common.name': '名称', 'common.description': '描述',
    'common.actions': '操作', 'common.copy': '复制', 'common.copied': '已复制', 'common.saved': '已保存',
    'common.deleted': '已删除', 'common.retry': '重试', 'common.back': '返回', 'common.yes': '是', 'common.no': '否',
    'common.confirmDelete': '确定删除“{name}”吗？此操作无法撤销。',
    'error.network': '无法连接到服务器，请检查 zhiku 是否在运行。',
    'error.unauthorized': '登录已失效或令牌不正确，请重新登录。',
    'error.payload_too_large': '文件太大：{message}',
    'error.model_unavailable': '模型未加载：{message}',
    'error.overloaded': '服务器正忙：{message}',
    'error.generic': '出错了：{message}',
    'lang.switch': 'English',
  },
  en: {
    'app.name': 'zhiku',
    'common.save': 'Save', 'common.cancel': 'Cancel', 'common.delete': 'Delete', 'common.create': 'Create',
    'common.close': 'Close', 'common.confirm': 'OK', 'common.edit': 'Edit', 'common.loading': 'Loading…',
    'common.empty': 'Nothing here yet', 'common.search': 'Search', 'common.name': 'Name', 'common.description': 'Description',
    'common.actions': 'Actions', 'common.copy': 'Copy', 'common.copied': 'Copied', 'common.saved': 'Saved',
    'common.deleted': 'Deleted', 'common.retry': 'Retry', 'common.back': 'Back', 'common.yes': 'Yes', 'common.no': 'No',
    'common.confirmDelete': 'Delete “{name}”? This cannot be undone.',
    'error.network': 'Cannot reach the server. Is zhiku running?',
    'error.unauthorized': 'Your session expired or the token is wrong. Please sign in again.',
    'error.payload_too_large': 'File too large: {message}',
    'error.model_unavailable': 'The model is not loaded: {message}',
    'error.overloaded': 'The server is busy: {message}',
    'error.generic': 'Something went wrong: {message}',
    'lang.switch': '中文',
  },
});
