import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Role } from '../../src/domain/roles.js';
import { concordOpenApi } from '../../src/http/openapi.js';
import { backends } from '../support/backends.js';
import type { TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';
import type { Slapd } from '../support/slapd.js';
import { generateDirectory, startSlapd } from '../support/slapd.js';

const doc = concordOpenApi('http://x');
const ajv = new Ajv({ strict: false });
ajv.addSchema(JSON.parse(JSON.stringify({ components: doc.components })), 'concord');

/** Throws unless `body` matches the documented 200 answer of `method path` in Concord's document. */
function checkDocumented(method: string, template: string, body: unknown): void {
  const paths = doc.paths as unknown as Record<
    string,
    Record<string, { responses: Record<string, { content: { 'application/json': { schema: unknown } } }> }>
  >;
  const schema = paths[template]?.[method]?.responses['200']?.content['application/json'].schema;
  if (!schema) throw new Error(`${method} ${template} is not documented`);
  const resolved = JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"concord#/components/'));
  const validate = ajv.compile(resolved);
  if (!validate(body))
    throw new Error(
      `${method} ${template}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 1000)}`,
    );
}

const BASE = '/concord/directory_sources';

describe.each(backends())('directory source API on %s', (backend) => {
  let ts: TestServer;
  let slapd: Slapd;
  const dir = generateDirectory(120, 6);
  beforeAll(async () => {
    [ts, slapd] = await Promise.all([startTestServer(backend), startSlapd(dir)]);
  });
  afterAll(async () => {
    await ts?.close();
    await slapd?.stop();
  });

  async function upload(id: number, csv: string) {
    const form = new FormData();
    form.append('file', new Blob([csv], { type: 'text/csv' }), 'people.csv');
    const auth = Buffer.from(`${ts.owner.email}:${ts.owner.apiKey}`).toString('base64');
    const res = await fetch(`${ts.url}/api/v1${BASE}/${id}/sync`, {
      method: 'POST',
      headers: { authorization: `Basic ${auth}` },
      body: form,
    });
    return { status: res.status, body: (await res.json()) as { job: { id: number }; created: boolean } };
  }

  /** Polls the history until the newest sync is terminal (bounded by the test's timeout). */
  async function finished(id: number) {
    for (;;) {
      const { status, body } = await ts.api('GET', `${BASE}/${id}/runs`);
      expect(status).toBe(200);
      checkDocumented('get', '/api/v1/concord/directory_sources/{id}/runs', body);
      const run = body.runs[0];
      if (['succeeded', 'failed', 'canceled'].includes(run.state)) return run;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  test('administrators only', async () => {
    const member = await ts.createUser({ role: Role.MEMBER });
    for (const [method, path] of [
      ['GET', BASE],
      ['POST', BASE],
      ['POST', `${BASE}/1/sync`],
      ['GET', `${BASE}/1/runs`],
    ] as const) {
      const form = method === 'POST' ? { name: 'x', connector: 'csv' } : undefined;
      const { status, body } = await ts.api(method, path, { as: member, form });
      expect([status, body.code, body.msg]).toEqual([
        400,
        'BAD_REQUEST',
        'Must be an organization administrator',
      ]);
    }
    expect((await ts.api('GET', BASE, { as: null })).status).toBe(401);
  });

  test('settings are validated per connector, naming the field', async () => {
    const bad = await ts.api('POST', BASE, {
      form: {
        name: 'corp',
        connector: 'ldap',
        settings: { url: 'http://x', bind_dn: 'cn=a', bind_password: 'p', user_base_dn: 'o=x' },
      },
    });
    expect([bad.status, bad.body.msg]).toEqual([
      400,
      'Invalid settings.url: must be an ldap:// or ldaps:// URL',
    ]);
    const missing = await ts.api('POST', BASE, { form: { name: 'corp', connector: 'ldap', settings: {} } });
    expect(missing.body.msg).toMatch(/^Invalid settings\.url/);
    const short = await ts.api('POST', BASE, { form: { name: 'hr', connector: 'csv', schedule_seconds: 5 } });
    expect(short.body.msg).toMatch(/^Invalid schedule_seconds/);
    const wrong = await ts.api('POST', BASE, { form: { name: 'hr', connector: 'ftp' } });
    expect(wrong.body.msg).toBe('Invalid connector: must be one of ldap, csv');
  });

  test('a CSV upload syncs through the job runner; per-row errors and counts are in the history', async () => {
    const created = await ts.api('POST', BASE, {
      form: { name: 'HR export', connector: 'csv', deactivate_missing: true },
    });
    expect(created.status).toBe(200);
    checkDocumented('post', '/api/v1/concord/directory_sources', created.body);
    const id = created.body.id as number;
    const csv = [
      'external_id,email,full_name,channels',
      'h1,h1@corp.example,Hana One,design;all',
      'h2,broken,Bad Mail,all',
      'h3,,Hugo Three,all',
    ].join('\n');
    const started = await upload(id, csv);
    expect(started.status).toBe(200);
    checkDocumented('post', '/api/v1/concord/directory_sources/{id}/sync', started.body);
    expect(started.body.created).toBe(true);
    const run = await finished(id);
    expect(run.state).toBe('succeeded');
    expect(run.counts).toMatchObject({ created: 2, subscribed: 3, skipped: 1 });
    expect(run.attempts.at(-1).row_errors).toEqual([
      { row: 'line 3', message: "Invalid email: 'broken' is not a valid e-mail address" },
    ]);
    const users = await ts.api('GET', '/users');
    expect(users.body.members.map((m: { full_name: string }) => m.full_name)).toEqual(
      expect.arrayContaining(['Hana One', 'Hugo Three']),
    );

    const again = await upload(id, csv);
    expect(again.status).toBe(200);
    const second = await finished(id);
    expect(second.id).not.toBe(run.id);
    expect(second.counts).toMatchObject({
      created: 0,
      updated: 0,
      subscribed: 0,
      unsubscribed: 0,
      deactivated: 0,
      skipped: 1,
    });

    const noFile = await ts.api('POST', `${BASE}/${id}/sync`);
    expect([noFile.status, noFile.body.msg]).toEqual([
      400,
      'A CSV source needs the file: upload one CSV file.',
    ]);
    const idle = await ts.api('POST', `${BASE}/${id}/cancel`);
    expect([idle.status, idle.body.msg]).toEqual([400, 'This source has no sync in progress.']);
  });

  test('an LDAP source: sync now, secrets hidden, change, delete', async () => {
    const created = await ts.api('POST', BASE, {
      form: {
        name: 'Corporate LDAP',
        connector: 'ldap',
        schedule_seconds: 3600,
        settings: slapd.sourceSettings,
      },
    });
    expect(created.status).toBe(200);
    const id = created.body.id as number;
    expect(created.body.source.settings.bind_password).toBeUndefined();
    expect(created.body.source.settings.bind_password_set).toBe(true);
    expect(created.body.source.schedule_seconds).toBe(3600);

    const started = await ts.api('POST', `${BASE}/${id}/sync`);
    expect(started.status).toBe(200);
    const run = await finished(id);
    expect(run.state).toBe('succeeded');
    expect(run.counts).toMatchObject({ created: 120, skipped: 0 });
    expect(run.progress.done).toBe(run.progress.total);

    const list = await ts.api('GET', BASE);
    checkDocumented('get', '/api/v1/concord/directory_sources', list.body);
    const shown = list.body.sources.find((s: { id: number }) => s.id === id);
    expect(shown).toMatchObject({ name: 'Corporate LDAP', connector: 'ldap', active_sync: null });
    expect(JSON.stringify(list.body)).not.toContain(slapd.adminPassword);

    // A PATCH of other settings keeps the stored bind password: the next sync still binds.
    const patched = await ts.api('PATCH', `${BASE}/${id}`, {
      form: { name: 'LDAP', settings: { page_size: 50 }, schedule_seconds: null },
    });
    expect(patched.status).toBe(200);
    checkDocumented('patch', '/api/v1/concord/directory_sources/{id}', patched.body);
    expect(patched.body.source).toMatchObject({
      name: 'LDAP',
      schedule_seconds: null,
      settings: { page_size: 50, bind_password_set: true },
    });
    await ts.api('POST', `${BASE}/${id}/sync`);
    expect((await finished(id)).state).toBe('succeeded');

    const wrongPass = await ts.api('PATCH', `${BASE}/${id}`, {
      form: { settings: { bind_password: 'wrong' } },
    });
    expect(wrongPass.status).toBe(200);
    await ts.api('POST', `${BASE}/${id}/sync`);
    const failedRun = await waitForAttemptError(id);
    expect(failedRun).toMatch(/invalid credentials/);
    const canceled = await ts.api('POST', `${BASE}/${id}/cancel`);
    checkDocumented('post', '/api/v1/concord/directory_sources/{id}/cancel', canceled.body);
    expect(canceled.body.result).toBe('success');
    expect(canceled.body.outcome).toMatch(/^(canceled|requested)$/);
    expect((await finished(id)).state).toBe('canceled');

    const deleted = await ts.api('DELETE', `${BASE}/${id}`);
    expect(deleted.status).toBe(200);
    const after = await ts.api('GET', BASE);
    expect(after.body.sources.some((s: { id: number }) => s.id === id)).toBe(false);
    const gone = await ts.api('GET', `${BASE}/${id}/runs`);
    expect([gone.status, gone.body.msg]).toEqual([400, `No such directory source: ${id}`]);
  });

  /** The first attempt error of the newest sync (a bad password fails each attempt, then retries). */
  async function waitForAttemptError(id: number): Promise<string> {
    for (;;) {
      const { body } = await ts.api('GET', `${BASE}/${id}/runs`);
      const run = body.runs[0];
      const err =
        run.error ?? run.attempts.find((a: { error: string | null }) => a.error)?.error ?? run.retry_reason;
      if (err) return err as string;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
});
