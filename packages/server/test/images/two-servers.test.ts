import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { backends, freshDatabase, freshDir } from '../support/backends.js';
import type { ServerProcess } from '../support/process.js';
import { createUserCli, serverEnv, spawnServer } from '../support/process.js';

const running: ServerProcess[] = [];
const dirs: { remove(): void }[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.kill()));
  for (const d of dirs.splice(0)) d.remove();
});

/** Two server processes sharing one result directory compute a missing variant once between them. */
describe.runIf(backends().includes('postgres'))('result store across server processes (PostgreSQL)', () => {
  it('200 concurrent requests through two servers: one transform, identical bodies', async () => {
    const db = await freshDatabase('postgres');
    const results = freshDir('concord-shared-results-');
    dirs.push(results);
    const env = serverEnv(db, {
      CONCORD_EXTERNAL_URL: 'http://concord.test',
      CONCORD_RESULT_DIR: results.dir,
    });
    const owner = await createUserCli(env, { email: 'owner@example.com', fullName: 'Owner', role: 'owner' });
    const [a, b] = await Promise.all([spawnServer(env), spawnServer(env)]);
    running.push(a!, b!);
    const form = new FormData();
    const png = await sharp({ create: { width: 90, height: 60, channels: 3, background: '#884422' } })
      .png()
      .toBuffer();
    form.append('file', new Blob([png]), 'a.png');
    const auth = `Basic ${Buffer.from(`owner@example.com:${owner.api_key}`).toString('base64')}`;
    const up = await fetch(`${a!.url}/api/v1/users/me/avatar`, {
      method: 'POST',
      headers: { authorization: auth },
      body: form,
    });
    expect(up.status).toBe(200);
    const path = `${new URL(((await up.json()) as { avatar_url: string }).avatar_url).pathname}?s=256`;
    const transforms = async () => {
      let sum = 0;
      for (const s of [a!, b!]) {
        const text = await (await fetch(`${s.url}/metrics`)).text();
        sum += Number(/^concord_image_transforms_total (\d+)$/m.exec(text)?.[1] ?? 'NaN');
      }
      return sum;
    };
    expect(await transforms()).toBe(0);
    const bodies = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const res = await fetch(`${(i % 2 ? a : b)!.url}${path}`);
        expect(res.status).toBe(200);
        return Buffer.from(await res.arrayBuffer()).toString('base64');
      }),
    );
    expect(new Set(bodies).size).toBe(1);
    expect(await transforms()).toBe(1);
  });
});
