#!/usr/bin/env node
import { createUserCommand } from './cli/createUser.js';
import { ConfigError, loadConfig } from './config/config.js';
import { ConcordError } from './errors.js';
import { startConcord } from './server.js';

const usage = `usage:
  concord serve [options]                 start the server (see README for options)
  concord create-user [options] --email E --full-name N [--role owner|administrator|member|guest] [--password P]
`;

/** Splits `argv` into server options (known config flags) and command arguments. */
function splitArgs(argv: string[]): { configArgs: string[]; rest: string[] } {
  const own = new Set(['--email', '--full-name', '--role', '--password']);
  const configArgs: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const flag = arg.split('=')[0]!;
    const target = own.has(flag) ? rest : configArgs;
    target.push(arg);
    if (!arg.includes('=') && i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) target.push(argv[++i]!);
  }
  return { configArgs, rest };
}

async function main(): Promise<void> {
  const [command = 'serve', ...argv] = process.argv.slice(2);
  if (command === '--help' || command === 'help') {
    process.stdout.write(usage);
    return;
  }
  const { configArgs, rest } = splitArgs(argv);
  const config = loadConfig(configArgs, process.env);
  if (command === 'create-user') return createUserCommand(rest, config);
  if (command !== 'serve') throw new ConfigError([`unknown command "${command}"`]);

  const server = await startConcord(config, {
    onListening: (url) => console.log(`Concord is listening at ${url}; warming up (progress: ${url}/readyz)`),
  });
  const users = await server.store.db.selectFrom('users').select('id').limit(1).execute();
  server.logger.info({ url: server.url, mode: config.mode }, 'Concord is ready');
  console.log(
    `Concord is running at ${server.url} (${config.mode} mode, data: ${config.mode === 'embedded' ? config.dataDir : 'PostgreSQL'})`,
  );
  if (users.length === 0) {
    console.log(
      'This workspace has no users yet. Create its owner with:\n' +
        '  npm run cli -- create-user --role owner --email you@example.com --full-name "Your Name" --password "…"\n' +
        "It prints the owner's API key; log in with the e-mail and password, or use the key with HTTP Basic auth.",
    );
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.logger.info({ signal }, 'shutting down');
    await server.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof ConcordError) {
    console.error(`concord: ${err.message}`);
  } else if (err instanceof Error && /^(--|unknown option|Unknown option)/i.test(err.message)) {
    console.error(`concord: ${err.message}\n${usage}`);
  } else {
    console.error('concord: failed to start:', err instanceof Error ? err.message : err);
  }
  process.exit(1);
});
