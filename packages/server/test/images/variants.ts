import sharp from 'sharp';
import { resultKey } from '../../src/images/resultStore.js';
import { transform, transformEncoder } from '../../src/images/transform.js';
import type { TransformOps } from '../../src/images/transformUrl.js';
import { canonicalPath } from '../../src/images/transformUrl.js';

/** A deterministic source picture and a set of variants of it, shared by the tests and their children. */
export async function sourcePng(): Promise<Buffer> {
  return sharp({ create: { width: 64, height: 48, channels: 3, background: '#3366cc' } })
    .composite([
      { input: { create: { width: 20, height: 48, channels: 3, background: '#ffcc00' } }, left: 30, top: 0 },
    ])
    .png()
    .toBuffer();
}

export interface Variant {
  ops: TransformOps;
  /** The key the server's `/img/…` route uses for these operations on this source. */
  key: string;
  /** The server's own transform, so a result written by a test child is what the server serves. */
  transform(): Promise<Buffer>;
}

/** `count` signed-URL variants of `source` (fill, square, WebP), keyed exactly as the server keys them. */
export function variants(source: Buffer, sourceSha256: string, count = 24): Variant[] {
  const sizes = [16, 32, 48, 64, 100, 128];
  const qualities = [50, 60, 70, 80, 90];
  return Array.from({ length: count }, (_, i) => {
    const size = sizes[i % sizes.length]!;
    const quality = qualities[Math.floor(i / sizes.length) % qualities.length]!;
    const ops: TransformOps = {
      fit: 'fill',
      width: size,
      height: size,
      format: 'webp',
      quality,
      source: sourceSha256,
    };
    return {
      ops,
      key: resultKey(sourceSha256, canonicalPath(ops), transformEncoder),
      transform: () => transform(source, ops, 25_000_000),
    };
  });
}
