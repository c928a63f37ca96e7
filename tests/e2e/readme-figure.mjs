// Make the README's screenshot, docs/figures/workspace.png: the README's five-minute walk
// (a "handbook" knowledge base with the travel policy, a published bot "hr") on a running
// server, then the bot's editor at 1280×760 with its debug chat answering the walk's
// question. Against a real server with the default model, on an idle machine (the figure
// shows the first-token time):
//   ZHIKU_URL=http://127.0.0.1:8080 ZHIKU_ADMIN_TOKEN=$(cat data/admin_token) \
//     node tests/e2e/readme-figure.mjs docs/figures/workspace.png
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const base = process.env.ZHIKU_URL || 'http://127.0.0.1:8080';
const token = process.env.ZHIKU_ADMIN_TOKEN;
const out = process.argv[2] || 'docs/figures/workspace.png';
const policy = new URL('../fixtures/docs/zh-travel-policy.docx', import.meta.url);
const question = '在上海出差，每晚住宿最多能报销多少？';

async function call(method, path, body) {
  const form = body instanceof FormData;
  const response = await fetch(base + path, {
    method,
    headers: { authorization: 'Bearer ' + token, ...(body && !form ? { 'content-type': 'application/json' } : {}) },
    body: form ? body : body && JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// The walk, as the README has it (on a fresh data folder).
await call('POST', '/api/kbs', { name: 'handbook' });
const form = new FormData();
form.append('file', new Blob([readFileSync(policy)]), 'zh-travel-policy.docx');
await call('POST', '/api/kbs/handbook/documents', form);
for (let i = 0; ; i++) {
  const docs = await call('GET', '/api/kbs/handbook/documents');
  if (docs.every((d) => d.status === 'indexed')) break;
  if (docs.some((d) => d.status === 'failed') || i > 120) throw new Error('not indexed: ' + JSON.stringify(docs));
  await new Promise((r) => setTimeout(r, 1000));
}
const bot = await call('POST', '/api/bots', { name: 'hr', persona: '你是公司制度助手。', knowledge_bases: ['handbook'] });
await call('POST', `/api/bots/${bot.id}/publish`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 }, deviceScaleFactor: 1 });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(base + '/assets/favicon.svg');
  await page.evaluate((t) => sessionStorage.setItem('zhiku.adminToken', t), token);
  await page.goto(`${base}/#/bots/${bot.id}`);
  await page.locator('[data-testid=chat-input]').fill(question);
  await page.locator('[data-testid=chat-send]').click();
  await page.waitForFunction(() => {
    const a = [...document.querySelectorAll('[data-testid=answer]')].pop();
    return a && ['done', 'failed'].includes(a.dataset.state);
  }, null, { timeout: 300_000 });
  const answer = page.locator('[data-testid=answer]').last();
  if (await answer.getAttribute('data-state') !== 'done') throw new Error('the answer failed: ' + await answer.innerText());
  await page.mouse.move(0, 0);
  await page.waitForTimeout(500);
  if (errors.length) throw new Error('errors on the page:\n' + errors.join('\n'));
  await page.screenshot({ path: out });
  console.log('saved', out);
} finally {
  await browser.close();
}
