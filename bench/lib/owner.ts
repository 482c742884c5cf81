import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Creates the workspace owner with `concord create-user` (as an operator would) in the server whose
 * environment is `env`; returns the user id, API key and a ready Basic `authorization` header.
 */
export async function createOwner(
  env: NodeJS.ProcessEnv,
  email = 'owner@example.com',
  fullName = 'Bench Owner',
): Promise<{ user_id: number; api_key: string; authorization: string }> {
  const { stdout } = await run(
    process.execPath,
    [
      '--import',
      'tsx',
      join(root, 'packages/server/src/main.ts'),
      'create-user',
      '--role',
      'owner',
      '--email',
      email,
      '--full-name',
      fullName,
    ],
    { env },
  );
  const owner = JSON.parse(stdout.trim()) as { user_id: number; api_key: string };
  return { ...owner, authorization: `Basic ${Buffer.from(`${email}:${owner.api_key}`).toString('base64')}` };
}
