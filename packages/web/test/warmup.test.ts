import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDir } from '../../server/test/support/backends.js';
import type { BigWorkspace } from '../../server/test/support/bigWorkspace.js';
import { seedBigWorkspace } from '../../server/test/support/bigWorkspace.js';
import type { ServerProcess } from '../../server/test/support/process.js';
import { serverEnv, spawnServer } from '../../server/test/support/process.js';
import { buildWeb, launchBrowser, openPage, screenshot } from './support/browser.js';

// Large enough that loading takes a visible while (about 1-3 s here), small enough to seed fast.
const USERS = 100_000;
const PER_USER = 10;

/**
 * Incident 5 as a person sees it: the page opened while the server warms up on a large workspace
 * shows the loading screen with the server's progress, then the app, by itself, in one document.
 */
describe(`web UI while the server warms up (${USERS.toLocaleString('en')} users)`, () => {
  const dir = freshDir('concord-web-warmup-');
  let web: Awaited<ReturnType<typeof buildWeb>>;
  let ws: BigWorkspace;
  let browser: Browser;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    [web, ws, browser] = await Promise.all([
      buildWeb(),
      seedBigWorkspace(dir.dir, { users: USERS, streams: 1000, perUser: PER_USER }),
      launchBrowser(),
    ]);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    web?.remove();
    dir.remove();
  });

  it('shows the loading state with progress, then the app, with no reload', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    // Already logged in (the seeded owner has an API key and no password): as after a restart.
    await ctx.addInitScript(
      ({ session }) => {
        localStorage.setItem('concord.session', JSON.stringify(session));
        // Every distinct thing the page shows, from its first paint: the warm-up screen's text, or
        // the app once its people list is there.
        const w = window as unknown as { shown: string[] };
        w.shown = [];
        const note = () => {
          const warm = document.querySelector('[data-testid="warmup"]');
          const app = document.querySelector('[data-testid="people-list"]');
          const v = warm
            ? `warmup: ${warm.querySelector('[data-testid="warmup-phase"]')?.textContent ?? ''} | ${
                warm.querySelector('[data-testid="warmup-progress"]')?.textContent ?? ''
              }`
            : app
              ? 'app'
              : 'other';
          if (w.shown.at(-1) !== v) w.shown.push(v);
        };
        new MutationObserver(note).observe(document, {
          subtree: true,
          childList: true,
          characterData: true,
        });
      },
      { session: { email: ws.owner.email, apiKey: ws.owner.apiKey, userId: ws.owner.id } },
    );
    const { page, errors } = await openPage(ctx);
    let documents = 0;
    page.on('framenavigated', (f) => f === page.mainFrame() && documents++);

    server = await spawnServer(
      serverEnv({ dataDir: dir.dir }, { CONCORD_WEB_DIR: web.dir }),
      [],
      'listening',
    );
    await page.goto(`${server.url}/#/people`);
    // A picture of the loading screen for a person to look at, if it is still up by now (what it
    // showed is asserted below from the page's own record, not from this).
    await page
      .getByTestId('warmup-progress')
      .waitFor({ timeout: 5_000 })
      .then(() => screenshot(page, 'warmup-loading'))
      .catch(() => {});
    await page.getByRole('heading', { name: 'People' }).waitFor({ timeout: 60_000 });
    await expect.poll(() => page.getByRole('status').first().textContent()).toMatch(/100,000 people/);
    await screenshot(page, 'warmup-then-people');

    const shown = await page.evaluate(() => (window as unknown as { shown: string[] }).shown);
    const warmups = shown.filter((s) => s.startsWith('warmup'));
    // The loading screen came first, with the server's own progress in it...
    expect(warmups.length, shown.join('\n')).toBeGreaterThan(0);
    expect(shown.indexOf(warmups[0]!)).toBeLessThan(shown.indexOf('app'));
    const withProgress = warmups.filter((s) =>
      /users: [\d,]+ of 100,000.*subscriptions: [\d,]+ of 1,000,000/.test(s),
    );
    expect(withProgress.length, shown.join('\n')).toBeGreaterThan(0);
    // ...moving (more than one distinct progress shown), then the app, and never the loader again.
    expect(new Set(withProgress).size, shown.join('\n')).toBeGreaterThan(1);
    expect(shown.at(-1)).toBe('app');
    expect(shown.slice(shown.indexOf('app')).every((s) => !s.startsWith('warmup'))).toBe(true);
    // One document: the page went on by itself, nothing reloaded it.
    expect(documents).toBe(1);
    expect(errors, JSON.stringify(errors) + shown.join('\n')).toEqual([]);
    await ctx.close();
  }, 120_000);
});
