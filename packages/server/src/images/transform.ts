import sharp from 'sharp';
import { fail } from '../errors.js';
import type { TransformOps } from './transformUrl.js';

/** Bumped when the pipeline below changes, so results of the old one are not reused. */
export const transformEncoder = `transform-1 sharp ${sharp.versions.sharp} vips ${sharp.versions.vips}`;

/**
 * The transform of a signed URL: EXIF orientation, resize (fit inside or fill and crop), encode.
 * A source of more than `maxPixels` pixels is refused before it is decoded.
 */
export function transform(source: Buffer, o: TransformOps, maxPixels: number): Promise<Buffer> {
  const img = sharp(source, { limitInputPixels: maxPixels, failOn: 'truncated' })
    .rotate()
    .resize(o.width, o.height, { fit: o.fit === 'fill' ? 'cover' : 'inside' });
  const q = { quality: o.quality };
  if (o.format === 'webp') return img.webp(q).toBuffer();
  if (o.format === 'jpeg') return img.jpeg(q).toBuffer();
  if (o.format === 'avif') return img.avif(q).toBuffer();
  return img.png().toBuffer();
}

/**
 * A stored source over the pixel limit (possible after CONCORD_IMAGE_MAX_PIXELS was lowered) as a
 * 400 naming the limit rather than a 500; any other error unchanged.
 */
export function refusedOverLimit(err: unknown, maxPixels: number): unknown {
  return err instanceof Error && /exceeds pixel limit/i.test(err.message)
    ? fail.badRequest(`The stored image has more pixels than the ${maxPixels} allowed`)
    : err;
}
