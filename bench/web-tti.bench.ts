import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { freshDir } from '../packages/server/test/support/backends.js';
import { seedBigWorkspace } from '../packages/server/test/support/bigWorkspace.js';
import { serverEnv, spawnServer } from '../packages/server/test/support/process.js';
import { buildWeb, launchBrowser } from '../packages/web/test/support/browser.js';
import { printTable, report, summarize } from './lib/report.js';

/**
 * The web UI's first load of the people page on a 10,000-user workspace, in headless Chromium
 * against a server process (the browser in this process, the server in its own):
 *
 * 1. Initial JavaScript: the gzip bytes of the scripts `index.html` loads (the entry chunk and its
 *    preloads; pages other than people/profile are split off and load when opened). Reference: the
 *    gzip bytes of the raw JSON of `GET /api/v1/users` for the same 10,000 people — the data the
 *    page exists to show, so the ratio says what the app itself costs next to its data. (The
 *    browser is sent brotli; the brotli bytes it received are printed too.)
 * 2. Time to interactive: navigation start → the people list rendered with its rows (the app has
 *    registered, built its store and rendered; measured in the page with `performance.now()`), each
 *    round in a fresh browser context (cold HTTP cache, new connection). Each round then checks that
 *    the page answers: a query typed into the search filters the list (checked, not timed).
 *    Reference, the limit: the same fresh context navigating to the raw JSON of `GET
 *    /api/v1/users` (`responseEnd`): no page can show the people before they have arrived, so the
 *    ratio is the cost of the JavaScript, `/register` and rendering over the bare data transfer.
 *    The two alternate round by round. The page's first contentful paint is printed alongside.
 */
const USERS = Number(process.env.BENCH_USERS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

const dir = freshDir('concord-bench-web-');
const web = await buildWeb();
const ws = await seedBigWorkspace(dir.dir, { users: USERS, streams: 100, perUser: 5 });
const server = await spawnServer(serverEnv({ dataDir: dir.dir }, { CONCORD_WEB_DIR: web.dir }));
const browser = await launchBrowser();
const session = { email: ws.owner.email, apiKey: ws.owner.apiKey, userId: ws.owner.id };
const authorization = `Basic ${Buffer.from(`${ws.owner.email}:${ws.owner.apiKey}`).toString('base64')}`;

try {
  // 1. Initial JavaScript, from the build: the module script and modulepreloads of index.html.
  const html = readFileSync(join(web.dir, 'index.html'), 'utf8');
  const scripts = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+\.js)"/g)].map((m) => m[1]!);
  const jsGzip = scripts.reduce((n, s) => n + statSync(join(web.dir, `${s}.gz`)).size, 0);
  const usersRes = await fetch(`${server.url}/api/v1/users`, { headers: { authorization } });
  const usersJson = Buffer.from(await usersRes.arrayBuffer());
  const usersGzip = gzipSync(usersJson, { level: 6 }).length;

  const appRound = async () => {
    const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    // Browser-side code as text: the bench is type-checked with Node's types, not the DOM's.
    await ctx.addInitScript({
      content: `localStorage.setItem('concord.session', ${JSON.stringify(JSON.stringify(session))});
        new MutationObserver((_, obs) => {
          if (document.querySelector('[data-testid="people-list"] li')) {
            window.listAt = performance.now();
            obs.disconnect();
          }
        }).observe(document, { subtree: true, childList: true });`,
    });
    const page = await ctx.newPage();
    await page.goto(`${server.url}/#/people`);
    await page.locator('[data-testid="people-list"] li').first().waitFor({ timeout: 60_000 });
    // Interactive: a query typed now filters the list (1 of USERS people match "Person 4321").
    await page.getByLabel('Search people').fill(`Person ${USERS - 1}`);
    await page.getByText(`1 of ${USERS.toLocaleString('en')} people match`).waitFor();
    const m = (await page.evaluate(`({
      tti: window.listAt,
      fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
      js: performance
        .getEntriesByType('resource')
        .filter((e) => e.name.endsWith('.js'))
        .reduce((n, e) => n + e.encodedBodySize, 0),
    })`)) as { tti: number; fcp: number; js: number };
    await ctx.close();
    return m;
  };
  const rawRound = async () => {
    const ctx = await browser.newContext({ extraHTTPHeaders: { authorization } });
    const page = await ctx.newPage();
    await page.goto(`${server.url}/api/v1/users`);
    const ms = (await page.evaluate(`performance.getEntriesByType('navigation')[0].responseEnd`)) as number;
    await ctx.close();
    return ms;
  };

  await appRound();
  await rawRound();
  const tti: number[] = [];
  const raw: number[] = [];
  const rows: Record<string, string | number>[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const a = await appRound();
    const r = await rawRound();
    tti.push(a.tti);
    raw.push(r);
    rows.push({
      round: i + 1,
      'people page interactive (ms)': Math.round(a.tti),
      'first contentful paint (ms)': Math.round(a.fcp),
      'raw /users JSON (ms)': Math.round(r),
      'JS received, brotli (bytes)': a.js,
    });
  }
  printTable(
    `web UI first load, ${USERS.toLocaleString('en')} users (browser + server on 2 shared cores)`,
    rows,
  );
  printTable('initial JavaScript', [
    { scripts: scripts.join(' '), 'gzip bytes': jsGzip, 'raw /users JSON gzip bytes': usersGzip },
  ]);
  const t = summarize(tti);
  const r = summarize(raw);
  await report('web-tti', [
    {
      name: 'web-initial-js',
      metric: 'gzip_bytes',
      concord: jsGzip,
      reference: `users-json-gzip-${USERS / 1000}k`,
      reference_value: usersGzip,
      ratio: jsGzip / usersGzip,
      higher_is_better: false,
      rounds: 1,
      spread: 0,
    },
    {
      name: `web-tti-people-${USERS / 1000}k`,
      metric: 'ms_to_interactive',
      concord: t.median,
      reference: 'raw-users-json-navigation',
      reference_value: r.median,
      ratio: t.median / r.median,
      higher_is_better: false,
      rounds: ROUNDS,
      spread: Math.max(t.spread, r.spread),
    },
  ]);
} finally {
  await browser.close();
  await server.stop();
  web.remove();
  dir.remove();
}
