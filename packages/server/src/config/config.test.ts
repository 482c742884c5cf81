import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, configSources, loadConfig } from './config.js';

describe('loadConfig', () => {
  it('applies defaults for the embedded mode', () => {
    const config = loadConfig([], {});
    expect(config).toMatchObject({ mode: 'embedded', host: '127.0.0.1', port: 9991, dataDir: './data' });
    expect(config.externalUrl).toBe('http://127.0.0.1:9991');
  });

  it('reads env vars and lets flags win', () => {
    const config = loadConfig(['--port', '8080', '--log-level=debug'], {
      CONCORD_PORT: '7000',
      CONCORD_HOST: '0.0.0.0',
    });
    expect(config).toMatchObject({ port: 8080, host: '0.0.0.0', logLevel: 'debug' });
  });

  it('selects cluster mode with a PostgreSQL URL and then requires a secret', () => {
    expect(() => loadConfig([], { DATABASE_URL: 'postgres://x@localhost/db' })).toThrow(/CONCORD_SECRET/);
    const config = loadConfig([], {
      DATABASE_URL: 'postgres://x@localhost/db',
      CONCORD_SECRET: 'x'.repeat(32),
    });
    expect(config.mode).toBe('cluster');
  });

  it('names every bad field at once', () => {
    try {
      loadConfig(['--port', '70000', '--bogus', '1'], {
        DATABASE_URL: 'mysql://nope',
        CONCORD_LOG_LEVEL: 'loud',
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const message = (err as ConfigError).message;
      expect(message).toMatch(/CONCORD_PORT \(--port\)/);
      expect(message).toMatch(/unknown option --bogus/);
      expect(message).toMatch(/DATABASE_URL .*postgres/);
      expect(message).toMatch(/CONCORD_LOG_LEVEL/);
      expect((err as ConfigError).problems.length).toBe(4);
    }
  });

  it('rejects a flag without a value and a short secret', () => {
    expect(() => loadConfig(['--port'], {})).toThrow(/--port needs a value/);
    expect(() => loadConfig([], { CONCORD_SECRET: 'short' })).toThrow(/at least 32/);
  });

  it('is documented: every variable and flag appears in the README configuration table', () => {
    const readme = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8');
    for (const source of Object.values(configSources)) {
      expect(readme).toContain(`| \`${source.env}\` | \`${source.flag}\` |`);
    }
  });
});
