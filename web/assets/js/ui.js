// Small DOM helpers shared by every page: h() builds elements, toast() and modal() talk to
// the person, errorText() puts an API error into words, loading() and failure() fill a
// page while it waits or after it failed, and scope() ends what a page started.

import { t } from './i18n.js';

/**
 * h('div.card#id', {onclick, class, ...attrs}, child, [children], 'text')
 * Strings become text nodes (never HTML); null/false children are skipped.
 */
export function h(spec, attrs, ...children) {
  const [, tag = 'div', id, classes] = spec.match(/^([a-z0-9-]*)(?:#([\w-]+))?((?:\.[\w-]+)*)$/i) || [];
  const el = document.createElement(tag || 'div');
  if (id) el.id = id;
  if (classes) el.className = classes.split('.').filter(Boolean).join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = [el.className, v].filter(Boolean).join(' ');
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** An API or network error in words a person can act on. */
export function errorText(err) {
  if (!err) return '';
  if (err.code === 'network') return t('error.network');
  if (err.code === 'unauthorized') return t('error.unauthorized');
  if (['payload_too_large', 'model_unavailable', 'overloaded'].includes(err.code)) {
    return t('error.' + err.code, { message: err.message });
  }
  return t('error.generic', { message: err.message || String(err) });
}

let toastBox;
/** A short message at the top right; kind = info | success | error. */
export function toast(message, kind = 'info') {
  if (!toastBox) {
    toastBox = h('div.toasts', { role: 'status', 'aria-live': 'polite' });
    document.body.append(toastBox);
  }
  const item = h('div.toast.toast-' + kind, message);
  toastBox.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 3000);
}

/**
 * A modal dialog. body: Node(s); actions: [{label, kind, onClick(close) → bool|Promise}].
 * Returns {close, element}. Escape and the backdrop close it.
 */
export function modal({ title, body, actions = [], wide = false }) {
  const close = () => { backdrop.remove(); document.removeEventListener('keydown', onKey); };
  const onKey = (e) => { if (e.key === 'Escape') close(); };
  const footer = h('div.modal-actions', actions.map((a) => h('button.btn' + (a.kind ? '.btn-' + a.kind : ''), {
    type: 'button',
    onclick: async (e) => {
      const button = e.currentTarget;
      button.disabled = true;
      try {
        const keep = await a.onClick?.(close);
        if (keep !== true) close();
      } finally {
        button.disabled = false;
      }
    },
  }, a.label)));
  const dialog = h('div.modal' + (wide ? '.modal-wide' : ''), { role: 'dialog', 'aria-modal': 'true', 'aria-label': title },
    h('div.modal-head', h('h2', title), h('button.icon-btn', { type: 'button', 'aria-label': t('common.close'), onclick: close }, '×')),
    h('div.modal-body', body),
    actions.length ? footer : null);
  const backdrop = h('div.backdrop', { onclick: (e) => { if (e.target === backdrop) close(); } }, dialog);
  document.body.append(backdrop);
  document.addEventListener('keydown', onKey);
  dialog.querySelector('input, textarea, select')?.focus();
  return { close, element: dialog };
}

/** Ask before something irreversible; resolves true when confirmed. */
export function confirmDialog(message, confirmLabel = t('common.delete')) {
  return new Promise((resolve) => {
    const m = modal({
      title: t('common.confirm'),
      body: h('p', message),
      actions: [
        { label: t('common.cancel'), onClick: () => resolve(false) },
        { label: confirmLabel, kind: 'danger', onClick: () => resolve(true) },
      ],
    });
    m.element.closest('.backdrop').addEventListener('click', (e) => { if (e.target === e.currentTarget) resolve(false); });
  });
}

export function formatBytes(n) {
  if (n == null) return '—';
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KB';
  return (n / 1024 / 1024).toFixed(1) + ' MB';
}

export function formatTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

/** Copy text; resolves when done. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    const area = h('textarea', { style: { position: 'fixed', opacity: '0' } }, text);
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  toast(t('common.copied'), 'success');
}

/** A labelled form field. */
export function field(label, control, hint) {
  return h('label.field', h('span.field-label', label), control, hint ? h('span.field-hint', hint) : null);
}

/** An empty-state box. */
export function empty(text, action) {
  return h('div.empty', h('p', text || t('common.empty')), action || null);
}

/** An error box with a retry button. */
export function failure(err, retry) {
  return h('div.alert.alert-error', { role: 'alert' }, h('span', errorText(err)),
    retry ? h('button.btn.btn-small', { type: 'button', onclick: retry }, t('common.retry')) : null);
}

/** A spinner with a line of text while something loads. */
export function loading(text) {
  return h('div.empty', { role: 'status' }, h('span.spinner'), ' ', text || t('common.loading'));
}

/** Whether a request failed only because its page went away (its signal was aborted). */
export const aborted = (err) => err && err.name === 'AbortError';

/** Everything a page started — requests, timers, listeners — ends with it. */
export function scope() {
  const controller = new AbortController();
  const timers = new Set();
  const ends = [];
  const s = {
    alive: true,
    signal: controller.signal,
    later(fn, ms) {
      const id = setTimeout(() => { timers.delete(id); if (s.alive) fn(); }, ms);
      timers.add(id);
      return id;
    },
    cancel(id) { if (id) { clearTimeout(id); timers.delete(id); } },
    onEnd(fn) { ends.push(fn); },
    end() {
      s.alive = false;
      controller.abort();
      for (const id of timers) clearTimeout(id);
      timers.clear();
      for (const fn of ends.splice(0)) fn();
    },
  };
  return s;
}
