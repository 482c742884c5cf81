import type { User } from '@concord/client';

/** The sizes the server renders; the browser picks one by the display density. */
const SIZES = [1, 2];

/**
 * A person's avatar, always from the store's `avatar_url` (which changes with every new avatar),
 * with fixed dimensions so that nothing shifts while it loads.
 */
export function Avatar({ user, size = 32 }: { user: User; size?: number }) {
  const url = user.avatar_url ?? '';
  const sized = (px: number) => `${url}${url.includes('?') ? '&' : '?'}s=${px}`;
  return (
    <img
      className="avatar"
      src={url ? sized(size) : undefined}
      srcSet={url ? SIZES.map((d) => `${sized(size * d)} ${d}x`).join(', ') : undefined}
      width={size}
      height={size}
      alt=""
      data-avatar-user={user.user_id}
      loading="lazy"
      decoding="async"
    />
  );
}
