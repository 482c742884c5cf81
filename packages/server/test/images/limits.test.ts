import { createHash, randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setAvatar } from '../../src/domain/users/setAvatar.js';
import { signedPath } from '../../src/images/transformUrl.js';
import type { Credentials, TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

const KEY = 'limits-test-key-limits-test-key-0123456789';
const MAX_BYTES = 20_000;
const MAX_PIXELS = 10_000;

/** CONCORD_AVATAR_MAX_BYTES and CONCORD_IMAGE_MAX_PIXELS, lowered, are what the server enforces. */
describe('configured image limits', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('sqlite', {
      CONCORD_AVATAR_MAX_BYTES: String(MAX_BYTES),
      CONCORD_IMAGE_MAX_PIXELS: String(MAX_PIXELS),
      CONCORD_IMAGE_KEYS: KEY,
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  const upload = async (who: Credentials, bytes: Buffer) => {
    const form = new FormData();
    form.append('file', new Blob([bytes]), 'avatar');
    const auth = `Basic ${Buffer.from(`${who.email}:${who.apiKey}`).toString('base64')}`;
    const res = await fetch(`${t.url}/api/v1/users/me/avatar`, {
      method: 'POST',
      headers: { authorization: auth },
      body: form,
    });
    return { status: res.status, body: (await res.json()) as { msg: string; avatar_url?: string } };
  };
  const png = (width: number, height: number) =>
    sharp({ create: { width, height, channels: 3, background: '#4060a0' } })
      .png()
      .toBuffer();
  /** Random pixels: a PNG that does not compress, so its size is about 3 bytes per pixel. */
  const noisePng = (side: number) =>
    sharp(randomBytes(side * side * 3), { raw: { width: side, height: side, channels: 3 } })
      .png({ compressionLevel: 0 })
      .toBuffer();

  it('refuses more pixels than configured, naming the limit, and accepts up to it', async () => {
    const u = await t.createUser({ fullName: 'Pix Els' });
    const over = await upload(u, await png(101, 100)); // 10,100 pixels: 25,000,000 would allow it
    expect(over.status).toBe(400);
    expect(over.body.msg).toBe(`The avatar has 10100 pixels, more than the ${MAX_PIXELS} allowed`);
    const at = await upload(u, await png(100, 100));
    expect(at.status, at.body.msg).toBe(200);
  });

  it('refuses a larger file than configured with 413 naming the limit, and accepts a smaller one', async () => {
    const u = await t.createUser({ fullName: 'By Tes' });
    const big = await noisePng(90); // ~24 kB, under the pixel limit (8,100)
    expect(big.length).toBeGreaterThan(MAX_BYTES);
    const refused = await upload(u, big);
    expect(refused.status).toBe(413);
    expect(refused.body.msg).toBe(`The uploaded file is larger than the ${MAX_BYTES} bytes allowed`);
    const small = await noisePng(60); // ~11 kB
    expect(small.length).toBeLessThan(MAX_BYTES);
    expect((await upload(u, small)).status).toBe(200);
  });

  it('answers 400 naming the limit, not 500, for a stored image over a since-lowered pixel limit', async () => {
    const u = await t.createUser({ fullName: 'Low Ered' });
    // Stored as if accepted under an earlier, higher limit: 200×200 = 40,000 pixels.
    const content = await png(200, 200);
    const sha256 = createHash('sha256').update(content).digest('hex');
    const { value: version } = await t.server.log.run(t.server.realmId, (ctx) =>
      setAvatar(ctx, { id: u.id, realm_id: t.server.realmId, role: 400, is_active: 1 }, u.id, {
        content,
        format: 'png',
        sha256,
      }),
    );
    const avatar = await fetch(`${t.url}/avatar/${u.id}/v${version}?s=64`);
    expect(avatar.status).toBe(400);
    // An error must not be cached like the image it stands for (a year, immutable).
    expect(avatar.headers.get('cache-control') ?? '').not.toContain('immutable');
    expect(avatar.headers.get('etag')).toBeNull();
    expect(((await avatar.json()) as { msg: string }).msg).toBe(
      `The stored image has more pixels than the ${MAX_PIXELS} allowed`,
    );
    const path = signedPath(KEY, {
      fit: 'fill',
      width: 64,
      height: 64,
      format: 'webp',
      quality: 80,
      source: sha256,
    });
    const img = await fetch(`${t.url}${path}`);
    expect(img.status).toBe(400);
    expect(img.headers.get('cache-control') ?? '').not.toContain('immutable');
    expect(((await img.json()) as { msg: string }).msg).toMatch(/more pixels than the 10000 allowed/);
  });
});
