import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends } from '../support/backends.js';
import type { Credentials, TestServer } from '../support/server.js';
import { startTestServer } from '../support/server.js';

/** Avatar upload (issue 5 step 1): formats, EXIF, square crop, events, versioned URLs, bad input. */
describe.each(backends())('avatar upload (%s)', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend);
  });
  afterAll(async () => {
    await t?.close();
  });

  const auth = (who: Credentials) => ({
    authorization: `Basic ${Buffer.from(`${who.email}:${who.apiKey}`).toString('base64')}`,
  });
  const upload = async (who: Credentials, bytes: Buffer, path = '/users/me/avatar', method = 'POST') => {
    const form = new FormData();
    form.append('file', new Blob([bytes]), 'avatar');
    const res = await fetch(`${t.url}/api/v1${path}`, { method, headers: auth(who), body: form });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  /** A 300×200 picture: left half red, right half blue (so crops and rotations are visible). */
  const picture = () =>
    sharp({ create: { width: 300, height: 200, channels: 3, background: '#ff0000' } }).composite([
      {
        input: { create: { width: 150, height: 200, channels: 3, background: '#0000ff' } },
        left: 150,
        top: 0,
      },
    ]);
  const fetchImage = async (url: string) => {
    const res = await fetch(url, { redirect: 'manual' });
    return { res, bytes: Buffer.from(await res.arrayBuffer()) };
  };

  it('accepts JPEG, PNG, WebP, GIF and AVIF; serves a square PNG without metadata, immutable', async () => {
    const u = await t.createUser({ fullName: 'Pic Ture' });
    const flat = await picture().png().toBuffer();
    const inputs: Record<string, Buffer> = {
      jpeg: await sharp(flat).jpeg().toBuffer(),
      png: flat,
      webp: await sharp(flat).webp().toBuffer(),
      gif: await sharp(flat).gif().toBuffer(),
      avif: await sharp(flat).avif().toBuffer(),
    };
    let version = 1;
    for (const [format, bytes] of Object.entries(inputs)) {
      const res = await upload(u, bytes);
      expect(res.status, `${format}: ${JSON.stringify(res.body)}`).toBe(200);
      version += 1;
      expect(res.body.avatar_url).toBe(`${t.url}/avatar/${u.id}/v${version}`);
      const { res: img, bytes: png } = await fetchImage(`${res.body.avatar_url as string}?s=64`);
      expect(img.status).toBe(200);
      expect(img.headers.get('content-type')).toBe('image/png');
      expect(img.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      const meta = await sharp(png).metadata();
      expect([meta.width, meta.height, meta.exif, meta.icc, meta.xmp]).toEqual([
        64,
        64,
        undefined,
        undefined,
        undefined,
      ]);
    }
    // The old version's URL no longer serves image bytes: it redirects to the current one.
    const old = await fetch(`${t.url}/avatar/${u.id}/v2`, { redirect: 'manual' });
    expect(old.status).toBe(302);
    expect(old.headers.get('location')).toBe(`${t.url}/avatar/${u.id}/v${version}`);
    expect(old.headers.get('cache-control')).toBe('public, max-age=60');
  });

  it('applies EXIF orientation before the square crop', async () => {
    const u = await t.createUser({ fullName: 'Ex If' });
    // Stored landscape (red left, blue right) with orientation 6 (rotate 90° clockwise to display):
    // displayed, red is on top and blue below.
    const jpeg = await picture().jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const res = await upload(u, jpeg);
    expect(res.status).toBe(200);
    const { bytes } = await fetchImage(`${res.body.avatar_url as string}?s=100`);
    const { data } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    const px = (x: number, y: number) => [...data.subarray((y * 100 + x) * 3, (y * 100 + x) * 3 + 3)];
    const top = px(50, 5);
    const bottom = px(50, 95);
    expect(top[0]! > 200 && top[2]! < 60, `top ${top}`).toBe(true);
    expect(bottom[2]! > 200 && bottom[0]! < 60, `bottom ${bottom}`).toBe(true);
  });

  it('sends realm_user update events with the new avatar_url, and DELETE returns to the default', async () => {
    const u = await t.createUser({ fullName: 'Ev Ent' });
    const reg = await t.api('POST', '/register', { as: u, form: { event_types: ['realm_user'] } });
    expect(reg.status).toBe(200);
    const png = await picture().png().toBuffer();
    const up = await upload(u, png);
    expect(up.status).toBe(200);
    const events = await t.api('GET', '/events', {
      as: u,
      query: { queue_id: reg.body.queue_id, last_event_id: reg.body.last_event_id },
    });
    const person = events.body.events.find((e: { type: string }) => e.type === 'realm_user')?.person;
    expect(person).toMatchObject({
      user_id: u.id,
      avatar_url: up.body.avatar_url,
      avatar_version: 2,
      avatar_url_medium: expect.any(String),
    });
    const fromApi = (await t.api('GET', `/users/${u.id}`)).body.user;
    expect(fromApi.avatar_url).toBe(up.body.avatar_url);

    const r = await fetch(`${t.url}/api/v1/users/me/avatar`, { method: 'DELETE', headers: auth(u) });
    const del = { status: r.status, body: (await r.json()) as Record<string, unknown> };
    expect(del.status).toBe(200);
    expect(del.body.avatar_url).toBe(`${t.url}/avatar/${u.id}/v3`);
    const { res } = await fetchImage(del.body.avatar_url as string);
    expect(res.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
  });

  it('lets administrators set anyone’s avatar, and members only their own', async () => {
    const a = await t.createUser({ fullName: 'Mem Ber' });
    const b = await t.createUser({ fullName: 'Oth Er' });
    const png = await picture().png().toBuffer();
    const denied = await upload(a, png, `/users/${b.id}/avatar`);
    expect(denied.status).toBe(400);
    expect(denied.body.msg).toBe('Insufficient permission');
    const byAdmin = await upload(t.owner, png, `/users/${b.id}/avatar`);
    expect(byAdmin.status).toBe(200);
    expect(byAdmin.body.avatar_url).toBe(`${t.url}/avatar/${b.id}/v2`);
    // Negative control: a's avatar is untouched (still the generated one at v1).
    expect((await t.api('GET', `/users/${a.id}`)).body.user.avatar_version).toBe(1);
  });

  const metric = async (name: string) => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 'NaN');
  };

  it('renders an uncached size once for 200 concurrent requests; identical bodies; ETag and 304', async () => {
    const u = await t.createUser({ fullName: 'Sin Gle' });
    const up = await upload(u, await picture().png().toBuffer());
    const url = `${up.body.avatar_url as string}?s=192`;
    const before = await metric('concord_image_transforms_total');
    const bodies = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const res = await fetch(url);
        expect(res.status).toBe(200);
        return Buffer.from(await res.arrayBuffer()).toString('base64');
      }),
    );
    expect(new Set(bodies).size).toBe(1);
    expect((await metric('concord_image_transforms_total')) - before).toBe(1);
    const first = await fetch(url);
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^W\/"/); // the version fixes the image, not every byte (see avatars.ts)
    expect((await fetch(url, { headers: { 'if-none-match': etag } })).status).toBe(304);
    // A new avatar is a new URL with another ETag: the old one does not validate it.
    const next = await upload(u, await picture().negate().png().toBuffer());
    const nextUrl = `${next.body.avatar_url as string}?s=192`;
    expect(nextUrl).not.toBe(url);
    const fresh = await fetch(nextUrl, { headers: { 'if-none-match': etag } });
    expect(fresh.status).toBe(200);
    expect(fresh.headers.get('etag')).not.toBe(etag);
  });

  it('detects a corrupted cached result on disk, regenerates it and counts it in /metrics', async () => {
    const u = await t.createUser({ fullName: 'Cor Rupt' });
    const up = await upload(u, await picture().png().toBuffer());
    const url = `${up.body.avatar_url as string}?s=48`;
    const dir = join(t.config.dataDir, 'results');
    const before = new Set(readdirSync(dir));
    const good = Buffer.from(await (await fetch(url)).arrayBuffer());
    // The result is answered before its file is written: wait (bounded) for the write.
    const createdFiles = () => readdirSync(dir).filter((f) => !before.has(f) && f.endsWith('.res'));
    for (let i = 0; i < 500 && createdFiles().length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const created = createdFiles();
    expect(created).toHaveLength(1);
    const file = join(dir, created[0]!);
    const bytes = readFileSync(file);
    bytes[bytes.length - 3]! ^= 0x55;
    writeFileSync(file, bytes);
    const corrupt = await metric('concord_image_results_corrupt_total');
    const transforms = await metric('concord_image_transforms_total');
    const again = Buffer.from(await (await fetch(url)).arrayBuffer());
    expect(again.equals(good)).toBe(true);
    expect(await metric('concord_image_results_corrupt_total')).toBe(corrupt + 1);
    expect(await metric('concord_image_transforms_total')).toBe(transforms + 1);
    // Negative control: an intact file is served without a new transform.
    await fetch(url);
    expect(await metric('concord_image_transforms_total')).toBe(transforms + 1);
  });

  it('refuses bad input with a 4xx and a clear message, never a 5xx', async () => {
    const u = await t.createUser({ fullName: 'Bad Input' });
    const good = await picture().png().toBuffer();
    const jpeg = await picture().jpeg().toBuffer();
    // A PNG header declaring 100000×100000 pixels: a decompression bomb, refused before decoding.
    const bomb = Buffer.from(good);
    bomb.writeUInt32BE(100_000, 16);
    bomb.writeUInt32BE(100_000, 20);
    const tiff = await sharp(good).tiff().toBuffer();
    const cases: [string, Buffer, RegExp][] = [
      ['non-image', Buffer.from('hello, I am not a picture'), /not an image/],
      ['truncated JPEG', jpeg.subarray(0, Math.floor(jpeg.length / 2)), /could not be decoded/],
      ['truncated PNG', good.subarray(0, Math.floor(good.length / 2)), /could not be decoded/],
      ['bomb', bomb, /more than the 25000000 allowed/],
      ['unsupported format (TIFF)', tiff, /Unsupported avatar format 'tiff'/],
      ['empty', Buffer.alloc(0), /empty/],
    ];
    for (const [name, bytes, msg] of cases) {
      const res = await upload(u, bytes);
      expect(res.status, name).toBe(400);
      expect(res.body.msg, name).toMatch(msg);
    }
    const big = await upload(u, Buffer.alloc(1024 * 1024 + 10, 1));
    expect(big.status).toBe(413);
    expect(big.body.msg).toMatch(/too large|larger/i);
    // Nothing was stored: still version 1 (negative control on the loop above).
    expect((await t.api('GET', `/users/${u.id}`)).body.user.avatar_version).toBe(1);
  });
});
