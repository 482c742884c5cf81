import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../../server/test/support/server.js';
import { startTestServer } from '../../server/test/support/server.js';
import { buildWeb, launchBrowser, logIn, openPage, screenshot } from './support/browser.js';

const ROWS = 3000;

/** Starts recording what `selector`'s element shows (via `read`) on every DOM change, in the page. */
async function record(page: Page, selector: string, read: string): Promise<void> {
  await page.evaluate(
    ({ selector, read }) => {
      const w = window as unknown as { seen: string[] };
      w.seen = [];
      const get = new Function('el', `return ${read}`) as (el: Element | null) => string;
      const note = () => {
        const v = get(document.querySelector(selector));
        if (w.seen.at(-1) !== v) w.seen.push(v);
      };
      note();
      new MutationObserver(note).observe(document.body, {
        subtree: true,
        childList: true,
        attributes: true,
        characterData: true,
      });
    },
    { selector, read },
  );
}

const seen = (page: Page) => page.evaluate(() => (window as unknown as { seen: string[] }).seen);

/**
 * Administration pages against a real server: a directory sync's status moves live in the page
 * (concord_job events, no polling, no reload), the server status page shows nodes and jobs, and a
 * lost event queue is re-registered without a reload while a "reconnecting" indicator shows.
 */
describe('administration in Chromium', () => {
  let web: Awaited<ReturnType<typeof buildWeb>>;
  let t: TestServer;
  let browser: Browser;

  beforeAll(async () => {
    web = await buildWeb();
    // A short long-poll hold: a deleted queue's waiting poll ends (and is refused) within seconds.
    // Embedded SQLite, the default a user starts with (ADMIN_LIVE_BACKEND=postgres for cluster mode):
    // there every statement is synchronous, and a sync's progress must still reach the page live.
    t = await startTestServer(process.env.ADMIN_LIVE_BACKEND === 'postgres' ? 'postgres' : 'sqlite', {
      CONCORD_WEB_DIR: web.dir,
      CONCORD_EVENT_LONGPOLL_SECONDS: '4',
    });
    browser = await launchBrowser();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await t?.close();
    web?.remove();
  });

  it('"Sync now" on a CSV source: running with progress, then succeeded, live; history shows the skipped rows', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const { page, errors } = await openPage(ctx);
    await logIn(page, t.url, 'owner@example.com', 'owner-password');
    await page.goto(`${t.url}/#/directory`);
    await page.getByRole('heading', { name: 'Directory sources' }).waitFor();

    // Create a CSV source through the form.
    const form = page.getByRole('form', { name: 'New directory source' });
    await form.getByLabel('Name', { exact: true }).fill('HR export');
    await form.getByLabel(/CSV file/).check();
    await form.getByRole('button', { name: 'Create source' }).click();
    await page.getByText('HR export is created.').waitFor();
    const card = page.getByRole('article', { name: /HR export/ });
    await card.waitFor();
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 7));

    const lines = ['external_id,email,full_name,channels'];
    for (let i = 0; i < ROWS; i++) lines.push(`hr${i},hr${i}@corp.example,Staff ${i},all-staff`);
    lines.push('broken-row-without-columns', 'hr0,dup@corp.example,Duplicate Id,all-staff');
    await card.getByLabel('CSV file for HR export').setInputFiles({
      name: 'people.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(lines.join('\n')),
    });
    const sourceId = await card.getAttribute('data-source-id');
    await record(
      page,
      `[data-source-id="${sourceId}"] [data-testid="job"]`,
      `el ? el.dataset.state + ' ' + el.querySelector('progress').dataset.done + '/' + el.querySelector('progress').dataset.total : 'none'`,
    );
    await card.getByRole('button', { name: 'Sync now' }).click();
    await page.getByText('A sync of HR export has started.').waitFor();
    await expect
      .poll(() => card.getByTestId('job-state').textContent(), { timeout: 60_000 })
      .toBe('Succeeded');
    await card
      .getByTestId('job')
      .getByText(/skipped/)
      .waitFor();
    await screenshot(page, 'directory-sources');

    const states = (await seen(page)).filter((s) => s !== 'none');
    const parsed = states.map((s) => {
      const [state, progress] = s.split(' ');
      const [done, total] = progress!.split('/').map((n) => (n === '' ? null : Number(n)));
      return { state, done, total };
    });
    // Running with partial progress was on screen, before succeeded with all of it.
    const running = parsed.findIndex(
      (p) => p.state === 'running' && p.total && p.done! > 0 && p.done! < p.total,
    );
    expect(running, JSON.stringify(states)).toBeGreaterThanOrEqual(0);
    const last = parsed.at(-1)!;
    expect(last.state).toBe('succeeded');
    expect(last.done).toBe(last.total);
    expect(parsed.findIndex((p) => p.state === 'succeeded')).toBeGreaterThan(running);
    // The progress moved on screen more than once (live events, not one final render).
    expect(new Set(parsed.filter((p) => p.state === 'running').map((p) => p.done)).size).toBeGreaterThan(1);
    expect(await card.locator('[data-count="created"]').textContent()).toBe(ROWS.toLocaleString('en'));
    expect(await card.locator('[data-count="skipped"]').textContent()).toBe('2');

    // The history lists the run, with the two skipped rows and why.
    await card.locator('summary', { hasText: 'History' }).click();
    const history = card.getByTestId('sync-history');
    await history.locator('tr[data-job-id]').first().waitFor();
    await history.getByText('2', { exact: true }).click();
    await expect.poll(() => history.locator('.row-errors li').count()).toBe(2);
    expect(await history.locator('.row-errors').textContent()).toMatch(/line \d+/);
    await screenshot(page, 'directory-history');
    await page.setViewportSize({ width: 390, height: 800 });
    await screenshot(page, 'directory-narrow');

    // The same document throughout: nothing reloaded.
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(7);
    // The API agrees with what the page showed.
    const runs = await t.api('GET', `/concord/directory_sources/${sourceId}/runs`);
    expect(runs.body.runs[0]).toMatchObject({ state: 'succeeded', counts: { created: ROWS, skipped: 2 } });
    expect(errors).toEqual([]);
    await ctx.close();
  });

  it('shows a clear error for a bad LDAP setting; edits a source, cancels its sync live, deletes it', async () => {
    const ctx = await browser.newContext();
    const { page, errors } = await openPage(ctx);
    await logIn(page, t.url, 'owner@example.com', 'owner-password');
    await page.goto(`${t.url}/#/directory`);
    const form = page.getByRole('form', { name: 'New directory source' });
    await form.getByLabel('Name', { exact: true }).fill('Corporate LDAP');
    await form.getByLabel('LDAP directory').check();
    await form.getByLabel('Server URL').fill('http://not-ldap.example');
    await form.getByLabel('Bind DN').fill('cn=concord,dc=example,dc=org');
    await form.getByLabel('Users base DN').fill('ou=people,dc=example,dc=org');
    await form.getByLabel('Bind password').fill('secret');
    await form.getByRole('button', { name: 'Create source' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/settings\.url/);

    // Nothing listens on port 1: a sync of this source fails to connect (and is retried).
    await form.getByLabel('Server URL').fill('ldap://127.0.0.1:1');
    await form.getByRole('button', { name: 'Create source' }).click();
    await page.getByText('Corporate LDAP is created.').waitFor();
    const card = page.getByRole('article', { name: /Corporate LDAP/ });
    await expect.poll(() => card.textContent()).toMatch(/ldap:\/\/127\.0\.0\.1:1 · manual syncs only/);

    await card.getByRole('button', { name: 'Edit' }).click();
    const edit = card.getByRole('form', { name: 'Edit Corporate LDAP' });
    await edit.getByLabel('Name', { exact: true }).fill('Head office LDAP');
    await edit.getByRole('button', { name: 'Save changes' }).click();
    await page.getByText('Head office LDAP is saved.').waitFor();
    const renamed = page.getByRole('article', { name: /Head office LDAP/ });
    await renamed.waitFor();
    const id = await renamed.getAttribute('data-source-id');
    const listed = await t.api('GET', '/concord/directory_sources');
    // The bind password was kept (not sent back empty) by the edit.
    expect(listed.body.sources.find((s: { id: number }) => s.id === Number(id)).settings).toMatchObject({
      bind_password_set: true,
      url: 'ldap://127.0.0.1:1',
    });

    // A sync in progress is canceled from the page, live; then the source can be deleted.
    await renamed.getByRole('button', { name: 'Sync now' }).click();
    await page.getByText('A sync of Head office LDAP has started.').waitFor();
    await renamed.getByRole('button', { name: 'Cancel sync' }).click();
    await expect
      .poll(() => renamed.getByTestId('job-state').textContent(), { timeout: 30_000 })
      .toBe('Canceled');
    await renamed.getByRole('button', { name: 'Delete…' }).click();
    await renamed.getByRole('button', { name: 'Delete Head office LDAP for good' }).click();
    await page.getByText('Head office LDAP is deleted.').waitFor();
    await expect.poll(() => page.getByRole('article', { name: /Head office LDAP/ }).count()).toBe(0);
    // Chromium logs the refused create (400) as a failed resource; that one is expected.
    expect(errors.filter((e) => !/status of 400 .*\/api\/v1\/concord\/directory_sources/.test(e))).toEqual(
      [],
    );
    await ctx.close();
  });

  it('server status: this node, every node with its lag and cache, and jobs by state', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const { page, errors } = await openPage(ctx);
    await logIn(page, t.url, 'owner@example.com', 'owner-password');
    await page.goto(`${t.url}/#/status`);
    await expect.poll(() => page.getByTestId('readiness').textContent()).toBe('Ready');
    const node = page.locator(`[data-testid="nodes"] tr[data-node="${t.config.nodeId}"]`);
    await node.waitFor();
    expect(await node.getByTestId('lag').textContent()).toMatch(/^\d[\d,]*$/);
    // The CSV sync of the first test is counted among the succeeded jobs.
    const cluster = await t.api('GET', '/concord/cluster');
    await expect
      .poll(() => page.locator('[data-testid="jobs-by-state"] td[data-state="succeeded"]').textContent())
      .toBe(String(cluster.body.jobs.succeeded));
    expect(cluster.body.jobs.succeeded).toBeGreaterThanOrEqual(1);
    await node.getByText('Statistics').click();
    await screenshot(page, 'server-status');
    expect(errors).toEqual([]);
    await ctx.close();
  });

  it('re-registers a lost event queue without a reload, showing "reconnecting" meanwhile', async () => {
    const ctx = await browser.newContext();
    const { page, errors } = await openPage(ctx);
    const queues: string[] = [];
    page.on('request', (r) => {
      const q = new URL(r.url()).searchParams.get('queue_id');
      if (r.url().includes('/api/v1/events') && q && !queues.includes(q)) queues.push(q);
    });
    await logIn(page, t.url, 'owner@example.com', 'owner-password');
    await expect.poll(() => queues.length).toBeGreaterThan(0);
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 9));
    await record(page, '[data-testid="reconnecting"]', `el ? 'shown' : 'hidden'`);

    // The server forgets the page's queue (as after an expiry): its next poll gets BAD_EVENT_QUEUE_ID.
    const gone = await t.api('DELETE', '/events', { form: { queue_id: queues[0] } });
    expect(gone.status).toBe(200);
    await expect.poll(() => queues.length, { timeout: 30_000 }).toBeGreaterThan(1);
    await expect.poll(() => seen(page)).toEqual(['hidden', 'shown', 'hidden']);

    // Live again on the new queue: a person created now appears without a reload.
    await t.createUser({ email: 'newcomer@example.com', fullName: 'Nora Newcomer' });
    await page.getByTestId('people-list').getByText('Nora Newcomer').waitFor();
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(9);
    // The long poll of the deleted queue is answered 400 BAD_EVENT_QUEUE_ID: the expected failure.
    expect(errors.filter((e) => !/status of 400 .*\/api\/v1\/events/.test(e))).toEqual([]);
    await ctx.close();
  });
});
