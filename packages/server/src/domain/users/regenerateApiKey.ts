import { generateApiKey } from '../../auth/apiKey.js';
import { cacheKey } from '../../changelog/change.js';
import type { CommandContext } from '../../changelog/log.js';

/** Replaces the user's API key; the old one stops working at commit. Returns the new key. */
export async function regenerateApiKey(ctx: CommandContext, userId: number): Promise<string> {
  const apiKey = generateApiKey();
  await ctx.trx.updateTable('users').set({ api_key: apiKey }).where('id', '=', userId).execute();
  ctx.record({
    kind: 'user.credentials_changed',
    payload: { userId },
    cacheKeys: [cacheKey.user(userId)],
    audience: { scope: 'users', userIds: [userId] },
  });
  return apiKey;
}
