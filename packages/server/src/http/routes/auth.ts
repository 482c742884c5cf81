import type { FastifyInstance } from 'fastify';
import { findUserByApiEmail, apiEmail } from '../../auth/authenticate.js';
import { dummyHash, verifyPassword } from '../../auth/password.js';
import { regenerateApiKey } from '../../domain/users/regenerateApiKey.js';
import { ConcordError } from '../../errors.js';
import type { AppContext } from '../context.js';
import { param, parseParams } from '../params.js';
import { success } from '../reply.js';
import { requireUser } from '../requireUser.js';
import { FEATURE_LEVEL, ZULIP_VERSION } from '../version.js';

/** fetch_api_key, server_settings and API-key regeneration. */
export function authRoutes(http: FastifyInstance, app: AppContext): void {
  http.post('/api/v1/fetch_api_key', async (req, reply) => {
    const { params, ignored } = parseParams(req, {
      username: param.string(254),
      password: param.string(1024),
    });
    const keys = [`email:${params.username.toLowerCase()}`, `ip:${req.ip}`];
    const wait = Math.max(...keys.map((k) => app.limiter.blockedFor(k)));
    if (wait > 0)
      throw new ConcordError('RATE_LIMIT_HIT', 'Too many failed login attempts; try again later', {}, wait);
    const user = await findUserByApiEmail(app.store.db, app.realmId, params.username, app.present.host);
    // Unknown users are checked against a dummy hash so that timing does not reveal accounts.
    const stored = user?.password_hash ?? (await dummyHash(app.config.passwordHashCost));
    const ok = (await verifyPassword(params.password, stored)) && user?.password_hash != null;
    if (!user || !ok) {
      app.limiter.fail(keys);
      app.metrics.loginFailures.inc();
      throw new ConcordError('AUTHENTICATION_FAILED', 'Your username or password is incorrect');
    }
    if (!user.is_active) throw new ConcordError('USER_DEACTIVATED', 'Account is deactivated');
    app.limiter.clear(keys[0]!);
    return success(
      reply,
      { api_key: user.api_key, email: apiEmail(user, app.present.host), user_id: user.id },
      ignored,
    );
  });

  http.get('/api/v1/server_settings', async (req, reply) => {
    const { ignored } = parseParams(req, {});
    return success(
      reply,
      {
        authentication_methods: {
          password: true,
          dev: false,
          email: true,
          ldap: false,
          remoteuser: false,
          github: false,
          azuread: false,
          gitlab: false,
          apple: false,
          google: false,
          saml: false,
          'openid connect': false,
        },
        external_authentication_methods: [],
        zulip_feature_level: FEATURE_LEVEL,
        zulip_version: ZULIP_VERSION,
        zulip_merge_base: ZULIP_VERSION,
        push_notifications_enabled: false,
        is_incompatible: false,
        email_auth_enabled: true,
        require_email_format_usernames: true,
        realm_uri: app.present.externalUrl,
        realm_url: app.present.externalUrl,
        realm_name: app.realmName,
        realm_icon: `${app.present.externalUrl}/static/realm-icon.svg`,
        realm_description: '',
        realm_web_public_access_enabled: false,
      },
      ignored,
    );
  });

  http.post('/api/v1/users/me/api_key/regenerate', { preHandler: requireUser(app) }, async (req, reply) => {
    const { ignored } = parseParams(req, {});
    const { value } = await app.log.run(app.realmId, (ctx) => regenerateApiKey(ctx, req.user.id));
    return success(reply, { api_key: value }, ignored);
  });
}
