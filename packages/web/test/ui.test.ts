import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../../server/test/support/server.js';
import { startTestServer } from '../../server/test/support/server.js';
import sharp from 'sharp';
import { buildWeb, launchBrowser, logIn, openPage, screenshot } from './support/browser.js';

/**
 * The web UI in headless Chromium against a real server: what one person does shows in another
 * person's open page without a reload.
 */
describe('web UI in Chromium', () => {
  let web: Awaited<ReturnType<typeof buildWeb>>;
  let t: TestServer;
  let browser: Browser;
  let png: Buffer;

  beforeAll(async () => {
    web = await buildWeb();
    t = await startTestServer('sqlite', { CONCORD_WEB_DIR: web.dir });
    browser = await launchBrowser();
    png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#c0392b' } })
      .png()
      .toBuffer();
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

  it("shows a new avatar in the uploader's header and in another user's people and member lists, without a reload", async () => {
    const ann = await t.createUser({
      email: 'ann@example.com',
      fullName: 'Ann Avatar',
      password: 'ann-password',
    });
    const ben = await t.createUser({
      email: 'ben@example.com',
      fullName: 'Ben Viewer',
      password: 'ben-password',
    });
    await t.api('POST', '/users/me/subscriptions', {
      form: { subscriptions: [{ name: 'photos' }], principals: [ann.id, ben.id] },
    });
    const streamId = (await t.api('GET', '/get_stream_id', { query: { stream: 'photos' } })).body.stream_id;
    const annCtx = await browser.newContext();
    const benCtx = await browser.newContext();
    const a = await openPage(annCtx);
    const b = await openPage(benCtx);
    const b2 = await openPage(benCtx);
    await logIn(a.page, t.url, 'ann@example.com', 'ann-password');
    await logIn(b.page, t.url, 'ben@example.com', 'ben-password');
    await b2.page.goto(`${t.url}/#/channels/${streamId}`);
    await b2.page.getByTestId('member-list').waitFor();
    const src = (page: typeof a.page, where: string) =>
      page.locator(`${where} img[data-avatar-user="${ann.id}"]`).first().getAttribute('src');
    const before = await src(b.page, '[data-testid="people-list"]');
    expect(before).toMatch(new RegExp(`/avatar/${ann.id}/v1`));

    await a.page.goto(`${t.url}/#/settings`);
    await a.page
      .getByLabel(/Choose an image/)
      .setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: png });
    await a.page.getByRole('img', { name: 'New avatar preview' }).waitFor();
    await a.page.getByRole('button', { name: 'Save avatar' }).click();
    await a.page.getByText('Your new avatar is saved.').waitFor();

    for (const [page, where] of [
      [a.page, '[data-testid="header-me"]'],
      [b.page, '[data-testid="people-list"]'],
      [b2.page, '[data-testid="member-list"]'],
    ] as const) {
      await expect.poll(() => src(page, where)).toMatch(new RegExp(`/avatar/${ann.id}/v2`));
      // The browser really loaded the new image.
      await expect
        .poll(() =>
          page
            .locator(`${where} img[data-avatar-user="${ann.id}"]`)
            .first()
            .evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0),
        )
        .toBe(true);
    }
    await screenshot(a.page, 'settings-avatar');
    expect([...a.errors, ...b.errors, ...b2.errors]).toEqual([]);
    await annCtx.close();
    await benCtx.close();
  });

  it('refuses a non-image and an oversized image with a clear error, changing nothing', async () => {
    const ctx = await browser.newContext();
    const { page, errors } = await openPage(ctx);
    await logIn(page, t.url, 'owner@example.com', 'owner-password');
    await page.goto(`${t.url}/#/settings`);
    const version = async () => (await t.api('GET', `/users/${t.owner.id}`)).body.user.avatar_version;
    const v0 = await version();
    const attempts = [
      { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('this is not an image at all') },
      { name: 'huge.png', mimeType: 'image/png', buffer: Buffer.alloc(3 * 1024 * 1024, 1) },
    ];
    for (const file of attempts) {
      await page.getByLabel(/Choose an image/).setInputFiles(file);
      await page.getByRole('button', { name: 'Save avatar' }).click();
      await expect
        .poll(() => page.getByRole('alert').textContent())
        .toMatch(/The avatar was not changed: .+/);
    }
    expect(await version()).toBe(v0);
    // Chromium logs each refused upload as a failed resource; those two are the expected ones.
    expect(errors.filter((e) => !/status of (400|413) .*\/api\/v1\/users\/me\/avatar/.test(e))).toEqual([]);
    await ctx.close();
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
