import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { resultKey } from '../../src/images/resultStore.js';

/** A deterministic source picture and a set of variants of it, shared by the tests and their children. */
export async function sourcePng(): Promise<Buffer> {
  return sharp({ create: { width: 64, height: 48, channels: 3, background: '#3366cc' } })
    .composite([
      { input: { create: { width: 20, height: 48, channels: 3, background: '#ffcc00' } }, left: 30, top: 0 },
    ])
    .png()
    .toBuffer();
}

export const encoderVersion = `sharp ${sharp.versions.sharp} vips ${sharp.versions.vips}`;

export interface Variant {
  ops: string;
  key: string;
  transform(): Promise<Buffer>;
}

export function variants(source: Buffer, count = 24): Variant[] {
  const hash = createHash('sha256').update(source).digest('hex');
  return Array.from({ length: count }, (_, i) => {
    const size = 16 + (i % 6) * 8;
    const quality = 50 + Math.floor(i / 6) * 10;
    const ops = `fill/${size}x${size}/webp/q${quality}`;
    return {
      ops,
      key: resultKey(hash, ops, encoderVersion),
      transform: () =>
        sharp(source).resize(size, size, { fit: 'cover' }).webp({ quality, effort: 0 }).toBuffer(),
    };
  });
}
