import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Imagor-style signed transform URLs: `/img/{signature}/{fit|fill}/{W}x{H}/{format}/q{quality}/{source}`.
 * The signature is base64url HMAC-SHA256 over the canonical path after it (no leading slash), under
 * any of the configured keys (so keys can be rotated: sign with the newest, accept all), compared in
 * constant time. Every operation comes from a bounded set, so a signed URL cannot ask for arbitrary
 * work, and `source` is the SHA-256 of a stored upload: the server never fetches a client's URL.
 */
export const transformSizes = [16, 32, 48, 64, 100, 128, 192, 256, 512, 1024] as const;
export const transformFormats = ['webp', 'png', 'jpeg', 'avif'] as const;
export const transformQualities = [50, 60, 70, 80, 90] as const;

export interface TransformOps {
  fit: 'fit' | 'fill';
  width: number;
  height: number;
  format: (typeof transformFormats)[number];
  quality: number;
  source: string;
}

export function canonicalPath(o: TransformOps): string {
  return `${o.fit}/${o.width}x${o.height}/${o.format}/q${o.quality}/${o.source}`;
}

export function sign(key: string, canonical: string): string {
  return createHmac('sha256', key).update(canonical).digest('base64url');
}

export function signedPath(key: string, o: TransformOps): string {
  const canonical = canonicalPath(o);
  return `/img/${sign(key, canonical)}/${canonical}`;
}

/** True when `signature` is valid for `canonical` under one of `keys` (all keys are tried). */
export function verify(keys: readonly string[], canonical: string, signature: string): boolean {
  const given = Buffer.from(signature, 'base64url');
  let ok = false;
  for (const key of keys) {
    const expected = createHmac('sha256', key).update(canonical).digest();
    if (given.length === expected.length && timingSafeEqual(given, expected)) ok = true;
  }
  return ok;
}

const SHAPE = /^(fit|fill)\/(\d{1,4})x(\d{1,4})\/([a-z]+)\/q(\d{1,3})\/([0-9a-f]{64})$/;

/** The operations of a canonical path, or a message saying which part is outside the bounded sets. */
export function parseOps(canonical: string): TransformOps | string {
  const m = SHAPE.exec(canonical);
  if (!m) return 'expected {fit|fill}/{W}x{H}/{format}/q{quality}/{source sha256}';
  const [, fit, w, h, format, q, source] = m;
  const sizes = transformSizes as readonly number[];
  if (!sizes.includes(Number(w)) || !sizes.includes(Number(h)))
    return `size must use ${transformSizes.join(', ')}`;
  if (!(transformFormats as readonly string[]).includes(format!))
    return `format must be one of ${transformFormats.join(', ')}`;
  if (!(transformQualities as readonly number[]).includes(Number(q)))
    return `quality must be one of ${transformQualities.join(', ')}`;
  return {
    fit: fit as 'fit' | 'fill',
    width: Number(w),
    height: Number(h),
    format: format as TransformOps['format'],
    quality: Number(q),
    source: source!,
  };
}
