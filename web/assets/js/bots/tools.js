// The bot editor's tools: HTTP endpoints the bot may call (method, URL with {parameters},
// the parameters' JSON schema, headers, secret ones kept by the server and never shown
// again) and the built-in table query, calculator and date. Reads `draft.tools` into cards and back.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { limits } from '../limits.js';
import { errorText, field, h, modal, mount } from '../ui.js';

const BUILTINS = ['knowledge_search', 'table_query', 'calculator', 'current_time'];
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
const EMPTY_SCHEMA = { type: 'object', properties: {} };

/** A tool as the form and the server's draft both give it, to compare the two. */
export function normTools(tools) {
  return (tools || []).map((x) => (x.type !== 'http' ? { type: x.type } : {
    type: 'http',
    name: x.name || '',
    description: x.description || '',
    method: x.method || 'GET',
    url: x.url || '',
    parameters: x.parameters ?? EMPTY_SCHEMA,
    headers: (x.headers || []).map((hd) => ({ name: hd.name || '', value: hd.value ?? null, secret: Boolean(hd.secret) })),
  }));
}

/** onEdit runs after a card is added or removed (typing is seen by the form itself). */
export function toolsEditor({ onEdit }) {
  const list = h('div.stack.tool-list');
  const addHttp = h('button.btn.btn-small', { type: 'button', 'data-testid': 'add-http-tool', onclick: () => add({ type: 'http', headers: [] }) }, '+ ' + t('editor.tools.http'));
  const addBuiltin = BUILTINS.map((type) => h('button.btn.btn-small', { type: 'button', 'data-type': type, onclick: () => add({ type }) }, '+ ' + t('editor.tools.' + type)));
  const importBtn = h('button.btn.btn-small', { type: 'button', 'data-testid': 'import-openapi', onclick: () => importOpenApi() }, t('editor.tools.import'));
  const element = h('div.stack', { 'data-path': 'tools' }, list, h('div.row.wrap', addHttp, importBtn, addBuiltin));

  /** Ask for an OpenAPI document and add a card per operation the server reads in it. */
  function importOpenApi() {
    const text = h('textarea.textarea.mono', { rows: 14, 'data-testid': 'openapi-document', placeholder: 'openapi: 3.0.3\nservers:\n  - url: https://api.example.com\npaths: …' });
    const problem = h('div.form-error', { role: 'alert' });
    modal({
      title: t('editor.tools.import'),
      wide: true,
      body: h('div.stack', h('p.field-hint', t('editor.tools.importHint')), text, problem),
      actions: [{ label: t('editor.tools.importDo'), kind: 'primary', onClick: async () => {
        problem.textContent = '';
        try {
          const got = await api.post('/api/tools/openapi', { document: text.value });
          for (const tool of got.tools) list.append(httpCard(tool));
          refreshButtons();
          onEdit();
          return false;
        } catch (err) {
          problem.textContent = errorText(err);
          return true;
        }
      } }],
    });
  }

  function refreshButtons() {
    const present = new Set(cards().map((c) => c.read().type));
    for (const b of addBuiltin) b.disabled = present.has(b.dataset.type);
    addHttp.disabled = cards().length >= limits.bot.tools_max;
  }

  const cards = () => [...list.children].map((x) => x.card);

  function add(tool) {
    list.append(tool.type === 'http' ? httpCard(tool) : builtinCard(tool));
    refreshButtons();
    onEdit();
  }

  function remover(el) {
    return h('button.btn.btn-ghost.btn-small', { type: 'button', 'aria-label': t('editor.tools.remove'),
      onclick: () => { el.remove(); refreshButtons(); onEdit(); } }, '✕');
  }

  function builtinCard(tool) {
    const el = h('div.tool-card', { 'data-testid': 'tool-card' });
    mount(el, h('div.row', h('strong.grow', t('editor.tools.' + tool.type)), remover(el)),
      h('p.field-hint', t('editor.tools.' + tool.type + 'Hint')));
    el.card = { read: () => ({ type: tool.type }) };
    return el;
  }

  function httpCard(tool) {
    const el = h('div.tool-card', { 'data-testid': 'tool-card' });
    const name = h('input.input', { value: tool.name || '', placeholder: 'get_weather', 'data-testid': 'tool-name' });
    const description = h('textarea.textarea', { rows: 2, placeholder: t('editor.tools.descriptionPlaceholder') }, tool.description || '');
    const method = h('select.select', METHODS.map((m) => h('option', { value: m, selected: m === (tool.method || 'GET') }, m)));
    const url = h('input.input', { value: tool.url || '', placeholder: 'https://api.example.com/weather/{city}', 'data-testid': 'tool-url' });
    const parameters = h('textarea.textarea.mono', { rows: 5, 'data-testid': 'tool-parameters' },
      JSON.stringify(tool.parameters ?? EMPTY_SCHEMA, null, 2));
    const headers = h('div.stack');
    const headerRow = (hd) => {
      const row = h('div.row.tool-header');
      const hName = h('input.input', { value: hd.name || '', placeholder: 'X-Api-Key', 'aria-label': t('editor.tools.headerName') });
      const stored = hd.secret && hd.value == null;
      const hValue = h('input.input', { value: hd.value ?? '', type: hd.secret ? 'password' : 'text', autocomplete: 'off',
        placeholder: stored ? t('editor.tools.secretStored') : '', 'aria-label': t('editor.tools.headerValue') });
      const secret = h('input', { type: 'checkbox', checked: Boolean(hd.secret),
        onchange: () => { hValue.type = secret.checked ? 'password' : 'text'; } });
      mount(row, hName, hValue, h('label.check', secret, h('span', t('editor.tools.secret'))), remover(row));
      row.read = () => ({ name: hName.value.trim(), value: hValue.value === '' && secret.checked ? null : hValue.value, secret: secret.checked });
      return row;
    };
    for (const hd of tool.headers || []) headers.append(headerRow(hd));
    const addHeader = h('button.btn.btn-ghost.btn-small', { type: 'button', onclick: () => { headers.append(headerRow({})); onEdit(); } }, '+ ' + t('editor.tools.addHeader'));
    mount(el,
      h('div.row', h('strong.grow', t('editor.tools.http')), remover(el)),
      h('div.grid-2', field(t('editor.tools.name'), name, t('editor.tools.nameHint')), field(t('editor.tools.method'), method)),
      field(t('editor.tools.description'), description, t('editor.tools.descriptionHint')),
      field(t('editor.tools.url'), url, t('editor.tools.urlHint')),
      field(t('editor.tools.parameters'), parameters, t('editor.tools.parametersHint')),
      h('div.field', h('span.field-label', t('editor.tools.headers')), headers, addHeader));
    el.card = {
      read: () => {
        let params;
        try {
          params = JSON.parse(parameters.value || '{}');
        } catch (_) {
          params = undefined;
        }
        return { type: 'http', name: name.value.trim(), description: description.value, method: method.value, url: url.value.trim(),
          parameters: params, headers: [...headers.children].map((r) => r.read()) };
      },
      parametersInput: parameters,
    };
    return el;
  }

  return {
    element,
    /** Show `tools`. */
    set(tools) {
      mount(list, (tools || []).map((x) => (x.type === 'http' ? httpCard(x) : builtinCard(x))));
      refreshButtons();
    },
    /** The tools as the cards show them. */
    current: () => cards().map((c) => c.read()),
    /** The first problem the browser can see, as {message}, or null. */
    problem() {
      for (const c of cards()) {
        if (c.parametersInput && c.read().parameters === undefined) {
          c.parametersInput.setAttribute('aria-invalid', 'true');
          return { message: t('editor.tools.badJson', { name: c.read().name }) };
        }
      }
      return null;
    },
  };
}
