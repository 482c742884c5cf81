import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../../server/test/support/server.js';
import { startTestServer } from '../../server/test/support/server.js';
import { buildWeb, launchBrowser, logIn, openPage, screenshot } from './support/browser.js';

/**
 * The web UI in headless Chromium against a real server: what one person does shows in another
 * person's open page without a reload.
 */
describe('web UI in Chromium', () => {
  let web: Awaited<ReturnType<typeof buildWeb>>;
  let t: TestServer;
  let browser: Browser;

  beforeAll(async () => {
    web = await buildWeb();
    t = await startTestServer('sqlite', { CONCORD_WEB_DIR: web.dir });
    browser = await launchBrowser();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await t?.close();
    web?.remove();
  });

  it('removes a deactivated member from an open channel page and brings them back on reactivation', async () => {
    const bea = await t.createUser({
      email: 'bea@example.com',
      fullName: 'Bea Member',
      password: 'bea-password',
    });
    const carl = await t.createUser({ email: 'carl@example.com', fullName: 'Carl Member' });
    const sub = await t.api('POST', '/users/me/subscriptions', {
      form: { subscriptions: [{ name: 'design' }], principals: [t.owner.id, bea.id, carl.id] },
    });
    expect(sub.status).toBe(200);
    const streamId = (await t.api('GET', '/get_stream_id', { query: { stream: 'design' } })).body.stream_id;

    const adminCtx = await browser.newContext();
    const beaCtx = await browser.newContext();
    const admin = await openPage(adminCtx);
    const member = await openPage(beaCtx);
    await logIn(admin.page, t.url, 'owner@example.com', 'owner-password');
    await logIn(member.page, t.url, 'bea@example.com', 'bea-password');

    await member.page.goto(`${t.url}/#/channels/${streamId}`);
    const members = member.page.getByTestId('member-list');
    await expect
      .poll(() => members.locator('li').allTextContents())
      .toEqual(['Bea Member', 'Carl Member', 'Olga Owner']);
    // A marker that a reload would wipe: the member page must stay the same document throughout.
    await member.page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    await screenshot(member.page, 'channel');

    await admin.page.goto(`${t.url}/#/admin`);
    const carlRow = admin.page.locator(`tr[data-user-id="${carl.id}"]`);
    await carlRow.getByRole('button', { name: 'Deactivate' }).click();
    await admin.page.getByText('Carl Member is deactivated.').waitFor();
    await screenshot(admin.page, 'admin');

    await expect.poll(() => members.locator('li').allTextContents()).toEqual(['Bea Member', 'Olga Owner']);
    await carlRow.getByRole('button', { name: 'Reactivate' }).click();
    await expect
      .poll(() => members.locator('li').allTextContents())
      .toEqual(['Bea Member', 'Carl Member', 'Olga Owner']);
    expect(await member.page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);

    expect(admin.errors).toEqual([]);
    expect(member.errors).toEqual([]);
    await adminCtx.close();
    await beaCtx.close();
  });

  it('saves a new name with clear feedback, shown in the header at once', async () => {
    const ctx = await browser.newContext();
    const { page, errors } = await openPage(ctx);
    await logIn(page, t.url, 'owner@example.com', 'owner-password');
    await page.goto(`${t.url}/#/settings`);
    await page.getByLabel('Full name').fill('Olga The Owner');
    await page.getByRole('button', { name: 'Save name' }).click();
    await page.getByText('Your name is saved.').waitFor();
    await expect.poll(() => page.getByTestId('header-me').textContent()).toBe('Olga The Owner');

    // Over-long names are refused with the server's message, and nothing changes.
    await page.getByLabel('Full name').evaluate((el) => el.removeAttribute('maxlength'));
    await page.getByLabel('Full name').fill('x'.repeat(101));
    await page.getByRole('button', { name: 'Save name' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/full_name/);
    expect(await page.getByTestId('header-me').textContent()).toBe('Olga The Owner');
    await screenshot(page, 'settings');
    // Chromium logs every non-2xx answer; the refused save above is the one expected.
    expect(errors.filter((e) => !/status of 400 .*\/api\/v1\/settings/.test(e))).toEqual([]);
    await ctx.close();
  });

  it('renders every main page without console errors (screenshots for review)', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    const { page, errors } = await openPage(ctx);
    await logIn(page, t.url, 'owner@example.com', 'owner-password');
    await screenshot(page, 'people');
    for (const [route, heading] of [
      ['channels', 'Channels'],
      ['status', 'Server status'],
      [`people/${t.owner.id}`, 'Olga The Owner'],
    ] as const) {
      await page.goto(`${t.url}/#/${route}`);
      await page.getByRole('heading', { name: heading, exact: true }).waitFor();
      await screenshot(page, route.split('/')[0] === 'people' ? 'profile' : route);
    }
    // A narrow screen: the same pages stay usable.
    await page.setViewportSize({ width: 390, height: 800 });
    await page.goto(`${t.url}/#/people`);
    await page.getByRole('heading', { name: 'People' }).waitFor();
    await screenshot(page, 'people-narrow');
    expect(errors).toEqual([]);
    await ctx.close();
  });
});
