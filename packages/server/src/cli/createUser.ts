import { parseArgs } from 'node:util';
import type { Config } from '../config/config.js';
import { createUser } from '../domain/users/createUser.js';
import { roleValues } from '../domain/roles.js';
import { openConcord } from '../server.js';
import pino from 'pino';

const roleNames: Record<string, number> = {
  owner: 100,
  administrator: 200,
  admin: 200,
  member: 400,
  guest: 600,
};

/**
 * `concord create-user --email E --full-name N [--role owner|administrator|member|guest]
 * [--password P]`: creates a user directly in the store (the server may be running) and prints
 * its id and API key. This is how an operator gets the first owner's credentials.
 */
export async function createUserCommand(args: string[], config: Config): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      email: { type: 'string' },
      'full-name': { type: 'string' },
      role: { type: 'string', default: 'member' },
      password: { type: 'string' },
    },
    strict: true,
  });
  const role = roleNames[values.role ?? 'member'] ?? Number(values.role);
  if (!roleValues.includes(role))
    throw new Error(`--role must be one of owner, administrator, member, guest`);
  if (!values['full-name']) throw new Error('--full-name is required');
  const { store, doorbell, log, realmId } = await openConcord(config, pino({ level: 'warn' }));
  try {
    const { value: user } = await log.run(realmId, (ctx) =>
      createUser(
        ctx,
        null,
        {
          email: values.email ?? null,
          fullName: values['full-name']!,
          role,
          password: values.password ?? null,
        },
        { passwordHashCost: config.passwordHashCost },
      ),
    );
    console.log(
      JSON.stringify({
        user_id: user.id,
        email: user.delivery_email,
        role: user.role,
        api_key: user.api_key,
      }),
    );
  } finally {
    await doorbell.close();
    await store.close();
  }
}
