import sharp from 'sharp';
import { avatarMaxPixels } from './avatarImage.js';
import type { TransformOps } from './transformUrl.js';

/** Bumped when the pipeline below changes, so results of the old one are not reused. */
export const transformEncoder = `transform-1 sharp ${sharp.versions.sharp} vips ${sharp.versions.vips}`;

/** The transform of a signed URL: EXIF orientation, resize (fit inside or fill and crop), encode. */
export function transform(source: Buffer, o: TransformOps): Promise<Buffer> {
  const img = sharp(source, { limitInputPixels: avatarMaxPixels, failOn: 'truncated' })
    .rotate()
    .resize(o.width, o.height, { fit: o.fit === 'fill' ? 'cover' : 'inside' });
  const q = { quality: o.quality };
  if (o.format === 'webp') return img.webp(q).toBuffer();
  if (o.format === 'jpeg') return img.jpeg(q).toBuffer();
  if (o.format === 'avif') return img.avif(q).toBuffer();
  return img.png().toBuffer();
}
