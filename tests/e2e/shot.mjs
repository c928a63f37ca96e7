// Screenshot one page for a person to look at while working on the UI:
//   node tests/e2e/shot.mjs URL OUT.png [WIDTH HEIGHT] [ADMIN_TOKEN]
// Signs in by putting the token in sessionStorage first; prints console errors.
import { chromium } from 'playwright-core';

const [url, out, width = '1280', height = '800', token = process.env.ZHIKU_ADMIN_TOKEN || ''] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
});
const page = await browser.newPage({ viewport: { width: Number(width), height: Number(height) } });
page.on('console', (m) => { if (m.type() === 'error') console.log('console error:', m.text()); });
page.on('pageerror', (e) => console.log('page error:', e.message));
const origin = new URL(url).origin;
if (token) {
  await page.goto(origin + '/assets/favicon.svg');
  await page.evaluate((t) => sessionStorage.setItem('zhiku.adminToken', t), token);
}
await page.goto(url, { waitUntil: 'networkidle' });
await page.waitForTimeout(800);
await page.screenshot({ path: out, fullPage: true });
await browser.close();
console.log('saved', out);
