import { loadConfig } from '../../packages/server/src/config/config.js';
import { Role } from '../../packages/server/src/domain/roles.js';
import { subscribe } from '../../packages/server/src/domain/subscriptions/subscribe.js';
import { createUser } from '../../packages/server/src/domain/users/createUser.js';
import { openConcord } from '../../packages/server/src/server.js';
import pino from 'pino';

/**
 * Fills a fresh embedded workspace through the command layer (so the change log and every row are
 * what a real workspace has): `users` people without passwords, `channels` channels (one in ten
 * private) with `membersPerChannel` random members each. Returns the owner's credentials.
 */
export async function seedWorkspace(
  dataDir: string,
  opts: { users: number; channels: number; membersPerChannel: number },
): Promise<{ ownerEmail: string; ownerApiKey: string; memberEmail: string; memberApiKey: string }> {
  const config = loadConfig([], { CONCORD_DATA_DIR: dataDir, CONCORD_LOG_LEVEL: 'warn' });
  const { store, log, realmId } = await openConcord(config, pino({ level: 'warn' }));
  try {
    const ids: number[] = [];
    let owner = { email: '', key: '' };
    let member = { email: '', key: '' };
    const batch = 500;
    for (let start = 0; start < opts.users; start += batch) {
      await log.run(realmId, async (ctx) => {
        for (let i = start; i < Math.min(opts.users, start + batch); i++) {
          const u = await createUser(
            ctx,
            null,
            {
              email: `person${i}@example.com`,
              fullName: `Person ${i}`,
              role: i === 0 ? Role.OWNER : Role.MEMBER,
              password: null,
            },
            { passwordHashCost: 10 },
          );
          ids.push(u.id);
          if (i === 0) owner = { email: u.delivery_email!, key: u.api_key };
          if (i === 1) member = { email: u.delivery_email!, key: u.api_key };
        }
      });
    }
    const actor = { id: ids[0]!, realm_id: realmId, role: Role.OWNER, is_active: 1 };
    let seed = 1;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let c = 0; c < opts.channels; c++) {
      const members = new Set<number>([ids[1]!]);
      while (members.size < Math.min(opts.membersPerChannel, ids.length))
        members.add(ids[Math.floor(random() * ids.length)]!);
      await log.run(realmId, (ctx) =>
        subscribe(ctx, actor, {
          streams: [{ name: `channel-${c}`, description: `Channel number ${c}` }],
          principals: [...members],
          inviteOnly: c % 10 === 0,
        }),
      );
    }
    return {
      ownerEmail: owner.email,
      ownerApiKey: owner.key,
      memberEmail: member.email,
      memberApiKey: member.key,
    };
  } finally {
    await store.close();
  }
}
