import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { fail } from '../errors.js';

/** Largest accepted avatar upload (the multipart file limit in app.ts is 1 MiB as well). */
export const avatarMaxBytes = 1024 * 1024;
/** Largest decoded pixel count: a small file declaring huge dimensions (a bomb) is refused unread. */
export const avatarMaxPixels = 25_000_000;
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
export async function checkAvatar(content: Buffer): Promise<CheckedAvatar> {
  if (content.length === 0) throw fail.badRequest('The avatar file is empty');
  if (content.length > avatarMaxBytes)
    throw fail.badRequest(`The avatar file is larger than ${avatarMaxBytes} bytes`);
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
  if (pixels > avatarMaxPixels)
    throw fail.badRequest(`The avatar has ${pixels} pixels, more than the ${avatarMaxPixels} allowed`);
  try {
    await renderAvatar(content, 16);
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
export function renderAvatar(content: Buffer, size: number): Promise<Buffer> {
  return sharp(content, { limitInputPixels: avatarMaxPixels, failOn: 'truncated' })
    .rotate()
    .resize(size, size, { fit: 'cover', position: 'centre' })
    .png()
    .toBuffer();
}
