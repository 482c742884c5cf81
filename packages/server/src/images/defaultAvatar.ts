import { createHash } from 'node:crypto';

/** The sizes (CSS pixels × density) avatars are served at; anything else is refused. */
export const avatarSizes = [16, 24, 28, 32, 40, 48, 56, 64, 80, 96, 100, 128, 192, 256, 500, 512] as const;
export const defaultAvatarSize = 100;

/** Up to two initials of a name: first letters of the first and last words. */
export function initials(fullName: string): string {
  const words = fullName.trim().split(/\s+/u).filter(Boolean);
  const first = (w: string | undefined) => (w ? [...w][0]!.toLocaleUpperCase() : '');
  const letters = words.length > 1 ? first(words[0]) + first(words.at(-1)) : first(words[0]);
  return letters || '?';
}

/** A colour derived from the user id alone: stable across renames, different between neighbours. */
export function avatarColour(userId: number): string {
  const hue = createHash('sha256').update(`concord-avatar:${userId}`).digest().readUInt16BE(0) % 360;
  return `hsl(${hue} 55% 42%)`;
}

const escapeXml = (s: string) =>
  s.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!,
  );

/**
 * The generated avatar of a user who has not uploaded one: their initials on their colour, as SVG
 * (the client's fonts render the letters, so the server needs none).
 */
export function defaultAvatarSvg(user: { id: number; full_name: string }, size: number): string {
  const text = escapeXml(initials(user.full_name));
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 100 100">` +
    `<rect width="100" height="100" fill="${avatarColour(user.id)}"/>` +
    `<text x="50" y="50" dy=".35em" text-anchor="middle" fill="#fff" ` +
    `font-family="system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif" ` +
    `font-size="${text.length > 1 ? 40 : 48}" font-weight="600">${text}</text></svg>`
  );
}
