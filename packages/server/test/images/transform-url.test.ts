import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLockDir, resultKey } from '../../src/images/resultStore.js';
import { transform, transformEncoder } from '../../src/images/transform.js';
import type { TransformOps } from '../../src/images/transformUrl.js';
import { canonicalPath, sign, signedPath } from '../../src/images/transformUrl.js';
import type { Credentials, TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

const OLD_KEY = 'old-image-key-old-image-key-0123456789';
const NEW_KEY = 'new-image-key-new-image-key-0123456789';

/** Signed imagor-style transform URLs over stored uploads (issue 5 step 5). */
describe('signed transform URLs', () => {
  let t: TestServer;
  let source: Buffer;
  let ops: TransformOps;
  beforeAll(async () => {
    t = await startTestServer('sqlite', { CONCORD_IMAGE_KEYS: `${NEW_KEY},${OLD_KEY}` });
    source = await sharp({ create: { width: 120, height: 80, channels: 3, background: '#20a060' } })
      .png()
      .toBuffer();
    await upload(t.owner, source);
    const sha = createHash('sha256').update(source).digest('hex');
    ops = { fit: 'fill', width: 64, height: 32, format: 'webp', quality: 80, source: sha };
  });
  afterAll(async () => {
    await t?.close();
  });
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${t.url}${path}`, { headers });
  /** Uploads `png` as `who`'s avatar (so as a stored source). */
  const upload = async (who: Credentials, png: Buffer) => {
    const form = new FormData();
    form.append('file', new Blob([png]), 'a.png');
    const res = await fetch(`${t.url}/api/v1/users/me/avatar`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${who.email}:${who.apiKey}`).toString('base64')}` },
      body: form,
    });
    expect(res.status).toBe(200);
  };
  const transforms = async () => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    return Number(/^concord_image_transforms_total (\d+)$/m.exec(text)?.[1]);
  };
  const resultDir = () => t.config.resultDir ?? join(t.config.dataDir, 'results');
  /** Waits until the result of `o` is on disk and its lock released (it is written after its answer). */
  const written = async (o: TransformOps) => {
    const key = resultKey(o.source, canonicalPath(o), transformEncoder);
    const lock = join(defaultLockDir(resultDir()), `${key}.lock`);
    // lstat: a lock is a symlink to its owner's PID, which existsSync would follow.
    while (!existsSync(join(resultDir(), `${key}.res`)) || lstatSync(lock, { throwIfNoEntry: false }))
      await new Promise((r) => setTimeout(r, 5));
  };
  const emptyResults = () => {
    for (const f of readdirSync(resultDir())) if (f.endsWith('.res')) unlinkSync(join(resultDir(), f));
  };

  it('serves a transform signed with any configured key: byte-identical to a fresh one, immutable, ETag/304', async () => {
    const expected = await transform(source, ops, 25_000_000);
    for (const key of [NEW_KEY, OLD_KEY]) {
      const res = await get(signedPath(key, ops));
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('image/webp');
      expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      const body = Buffer.from(await res.arrayBuffer());
      expect(body.equals(expected)).toBe(true);
      expect(await sharp(body).metadata()).toMatchObject({ width: 64, height: 32, format: 'webp' });
      const again = await get(signedPath(key, ops), { 'if-none-match': res.headers.get('etag')! });
      expect(again.status).toBe(304);
    }
    const fit = await get(signedPath(NEW_KEY, { ...ops, fit: 'fit', width: 64, height: 64, format: 'png' }));
    expect(await sharp(Buffer.from(await fit.arrayBuffer())).metadata()).toMatchObject({
      width: 64,
      height: 43,
      format: 'png',
    });
  });

  it('refuses unsigned, tampered and unknown-key URLs with 403', async () => {
    const canonical = canonicalPath(ops);
    const good = sign(NEW_KEY, canonical);
    const tampered = canonicalPath({ ...ops, width: 128 });
    const cases = [
      `/img/unsigned/${canonical}`,
      `/img/${good}/${tampered}`,
      `/img/${sign('unknown-key-unknown-key-unknown-key-00', canonical)}/${canonical}`,
      `/img/${good.slice(0, -2)}AA/${canonical}`,
    ];
    for (const path of cases) {
      const res = await get(path);
      expect(res.status, path).toBe(403);
      expect(((await res.json()) as { msg: string }).msg).toBe('Invalid image URL signature');
    }
  });

  it('refuses operations outside the bounded sets (400) and sources that are not stored uploads (404)', async () => {
    const bad = `fill/65x32/webp/q80/${ops.source}`;
    const res = await get(`/img/${sign(NEW_KEY, bad)}/${bad}`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { msg: string }).msg).toMatch(/size must use/);
    const gif = `fill/64x32/gif/q80/${ops.source}`;
    expect((await get(`/img/${sign(NEW_KEY, gif)}/${gif}`)).status).toBe(400);
    const missing = { ...ops, source: 'a'.repeat(64) };
    expect((await get(signedPath(NEW_KEY, missing))).status).toBe(404);
  });

  it('refuses a URL signed with an expired key (rotated out of CONCORD_IMAGE_KEYS) with 403', async () => {
    const rotated = await startTestServer('sqlite', { CONCORD_IMAGE_KEYS: NEW_KEY });
    try {
      const expired = await fetch(`${rotated.url}${signedPath(OLD_KEY, ops)}`);
      expect(expired.status).toBe(403);
      expect(((await expired.json()) as { msg: string }).msg).toBe('Invalid image URL signature');
      // Negative control: the same URL under the key still configured gets past the signature
      // (to 404: this fresh server has no such upload).
      expect((await fetch(`${rotated.url}${signedPath(NEW_KEY, ops)}`)).status).toBe(404);
    } finally {
      await rotated.close();
    }
  });

  it('answers 404 for a source no longer stored, though its bytes are in memory and a result of it on disk', async () => {
    const user = await t.createUser({ email: 'replaced@example.com' });
    const first = await sharp({ create: { width: 90, height: 90, channels: 3, background: '#a02060' } })
      .png()
      .toBuffer();
    await upload(user, first);
    const old = { ...ops, source: createHash('sha256').update(first).digest('hex') };
    // Transformed once: its bytes are now in the server's memory and this result on disk.
    expect((await get(signedPath(NEW_KEY, old))).status).toBe(200);
    await upload(user, await sharp(first).negate().png().toBuffer()); // replaces (deletes) the first
    expect((await get(signedPath(NEW_KEY, old))).status).toBe(404);
    expect((await get(signedPath(NEW_KEY, { ...old, width: 32 }))).status).toBe(404);
  });

  it('names a result by a weak ETag before computing it: the same under every key, 304 without a transform', async () => {
    const variant = { ...ops, width: 48, height: 48 };
    const computed = await get(signedPath(NEW_KEY, variant));
    expect(computed.status).toBe(200);
    const etag = computed.headers.get('etag')!;
    expect(etag).toMatch(/^W\/"[0-9a-f]{32}"$/);
    // The key is of the result, not of the URL's signature (the store-level test checks that a
    // result read from disk has it too).
    const underOldKey = await get(signedPath(OLD_KEY, variant));
    expect(underOldKey.headers.get('etag')).toBe(etag);
    // A client holding the ETag is answered 304 with neither the result nor a transform: with the
    // result gone from disk, a 200 would have had to compute it again.
    await written(variant);
    emptyResults();
    const before = await transforms();
    const again = await get(signedPath(NEW_KEY, variant), { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(again.headers.get('etag')).toBe(etag);
    expect(again.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(await transforms()).toBe(before);
    // If-None-Match compared as RFC 9110 says (weakly, lists, `*`), all without a transform.
    const strong = etag.slice(2);
    for (const header of [strong, `W/"0123", ${etag}`, `"0123",${strong}`, '*']) {
      const res = await get(signedPath(NEW_KEY, variant), { 'if-none-match': header });
      expect(res.status, header).toBe(304);
    }
    expect(await transforms()).toBe(before);
    // Under no-cache too, which fetch() adds to any request with a conditional header.
    const noCache = await get(signedPath(NEW_KEY, variant), {
      'if-none-match': etag,
      'cache-control': 'no-cache',
    });
    expect(noCache.status).toBe(304);
    expect(await transforms()).toBe(before);
    // Another ETag is not this result's: computed and sent.
    const other = await get(signedPath(NEW_KEY, variant), { 'if-none-match': 'W/"0123"' });
    expect(other.status).toBe(200);
    expect(await transforms()).toBe(before + 1);
  });

  it('answers errors without the immutable cache headers of a result, and 404 a deleted source despite its ETag', async () => {
    const user = await t.createUser({ email: 'deleted-source@example.com' });
    const auth = `Basic ${Buffer.from(`${user.email}:${user.apiKey}`).toString('base64')}`;
    const png = await sharp({ create: { width: 70, height: 70, channels: 3, background: '#2060a0' } })
      .png()
      .toBuffer();
    await upload(user, png);
    const mine = { ...ops, source: createHash('sha256').update(png).digest('hex') };
    const ok = await get(signedPath(NEW_KEY, mine));
    expect(ok.status).toBe(200);
    const etag = ok.headers.get('etag')!;
    const del = await fetch(`${t.url}/api/v1/users/me/avatar`, {
      method: 'DELETE',
      headers: { authorization: auth },
    });
    expect(del.status).toBe(200);
    const answers = [
      await get(signedPath(NEW_KEY, mine), { 'if-none-match': etag }), // 404: no longer stored
      await get(signedPath(NEW_KEY, mine)), // 404
      await get(`/img/${'A'.repeat(43)}/${canonicalPath(ops)}`), // 403
      await get(signedPath(NEW_KEY, { ...ops, width: 17 })), // 400
    ];
    expect(answers.map((r) => r.status)).toEqual([404, 404, 403, 400]);
    for (const r of answers) {
      expect(r.headers.get('cache-control') ?? '').not.toContain('immutable');
      expect(r.headers.get('etag')).toBeNull();
      expect(await r.json()).toMatchObject({ result: 'error' });
    }
  });

  it('refuses every URL when no keys are configured', async () => {
    const bare = await startTestServer('sqlite');
    try {
      const res = await fetch(`${bare.url}${signedPath(NEW_KEY, ops)}`);
      expect(res.status).toBe(403);
      // Says why, rather than blaming the URL's signature.
      expect(await res.json()).toMatchObject({
        code: 'FORBIDDEN',
        msg: expect.stringMatching(/not enabled/),
      });
    } finally {
      await bare.close();
    }
  });
});
