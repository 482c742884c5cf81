import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { concordOpenApi } from '../../src/http/openapi.js';
import type { TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

/**
 * The cluster endpoint counts background jobs by state (every state named, zero included), as its
 * OpenAPI entry says: what the web UI's server status page shows.
 */
describe('GET /concord/cluster: jobs by state', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('sqlite');
  });
  afterAll(async () => t?.close());

  const schema = () => {
    const doc = concordOpenApi('http://localhost') as unknown as {
      paths: Record<
        string,
        { get: { responses: Record<string, { content: Record<string, { schema: object }> }> } }
      >;
    };
    const ajv = new Ajv({ strict: false, allErrors: true });
    return ajv.compile(
      doc.paths['/api/v1/concord/cluster']!.get.responses['200']!.content['application/json']!.schema,
    );
  };

  it('answers every state, and counts a finished sync as succeeded', async () => {
    const validate = schema();
    const before = await t.api('GET', '/concord/cluster');
    expect(before.status).toBe(200);
    expect(validate(before.body), JSON.stringify(validate.errors)).toBe(true);
    expect(before.body.jobs).toEqual({
      queued: 0,
      running: 0,
      retrying: 0,
      succeeded: 0,
      failed: 0,
      canceled: 0,
    });
    expect(before.body.jobs_unclaimed).toBe(0);

    const source = await t.api('POST', '/concord/directory_sources', {
      form: { name: 'HR', connector: 'csv' },
    });
    expect(source.status).toBe(200);
    const sync = await t.api('POST', `/concord/directory_sources/${source.body.id}/sync`, {
      form: { csv: 'external_id,email,full_name,channels\ne1,e1@corp.example,Eve One,all' },
    });
    expect(sync.status).toBe(200);
    await expect
      .poll(async () => (await t.api('GET', '/concord/cluster')).body.jobs.succeeded, { timeout: 20_000 })
      .toBe(1);
    const after = await t.api('GET', '/concord/cluster');
    expect(validate(after.body), JSON.stringify(validate.errors)).toBe(true);
    expect(after.body.jobs).toMatchObject({ queued: 0, running: 0, failed: 0 });
  });
});
