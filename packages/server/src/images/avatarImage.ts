import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { fail } from '../errors.js';

/**
 * The configured limits of images (CONCORD_AVATAR_MAX_BYTES, CONCORD_IMAGE_MAX_PIXELS). `maxPixels`
 * bounds the decoded size: a small file declaring huge dimensions (a bomb) is refused unread.
 */
export interface ImageLimits {
  maxBytes: number;
  maxPixels: number;
}
/** sharp's format names of what we accept; AVIF decodes as `heif` with compression av1. */
const accepted = new Set(['jpeg', 'png', 'webp', 'gif', 'heif']);

export interface CheckedAvatar {
  content: Buffer;
  format: string;
  sha256: string;
}

/**
 * Checks an upload before it is stored: size, a format we accept, a bounded pixel count, and that
 * it fully decodes (a truncated file fails here, not later when serving it).
 */
export async function checkAvatar(content: Buffer, limits: ImageLimits): Promise<CheckedAvatar> {
  if (content.length === 0) throw fail.badRequest('The avatar file is empty');
  if (content.length > limits.maxBytes)
    throw fail.badRequest(`The avatar file is larger than the ${limits.maxBytes} bytes allowed`);
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(content, { limitInputPixels: false }).metadata();
  } catch {
    throw fail.badRequest('The avatar is not an image in a supported format (JPEG, PNG, WebP, GIF, AVIF)');
  }
  if (!meta.format || !accepted.has(meta.format) || (meta.format === 'heif' && meta.compression !== 'av1'))
    throw fail.badRequest(
      `Unsupported avatar format '${meta.format ?? 'unknown'}': use JPEG, PNG, WebP, GIF or AVIF`,
    );
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  if (pixels > limits.maxPixels)
    throw fail.badRequest(`The avatar has ${pixels} pixels, more than the ${limits.maxPixels} allowed`);
  try {
    await renderAvatar(content, 16, limits.maxPixels);
  } catch (err) {
    throw fail.badRequest(
      `The avatar image could not be decoded: ${err instanceof Error ? err.message.split('\n')[0] : 'error'}`,
    );
  }
  return { content, format: meta.format, sha256: createHash('sha256').update(content).digest('hex') };
}

/**
 * A square `size`×`size` PNG of a stored avatar: EXIF orientation applied, centre-cropped, no
 * metadata kept (sharp drops it unless asked). `failOn: 'truncated'` refuses partial files.
 */
export function renderAvatar(content: Buffer, size: number, maxPixels: number): Promise<Buffer> {
  return sharp(content, { limitInputPixels: maxPixels, failOn: 'truncated' })
    .rotate()
    .resize(size, size, { fit: 'cover', position: 'centre' })
    .png()
    .toBuffer();
}
