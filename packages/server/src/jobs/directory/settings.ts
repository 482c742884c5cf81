import { z } from 'zod';

/** Settings of an LDAP source (a bind password is stored, and never shown back by the API). */
export const ldapSettingsSchema = z.strictObject({
  url: z.string().regex(/^ldaps?:\/\/[^\s]+$/, 'must be an ldap:// or ldaps:// URL'),
  bind_dn: z.string().min(1).max(1024),
  bind_password: z.string().max(1024),
  user_base_dn: z.string().min(1).max(1024),
  group_base_dn: z.string().min(1).max(1024).nullable().default(null),
  user_filter: z.string().min(1).max(1024).default('(objectClass=inetOrgPerson)'),
  group_filter: z.string().min(1).max(1024).default('(objectClass=groupOfNames)'),
  id_attribute: z.string().min(1).max(64).default('uid'),
  name_attribute: z.string().min(1).max(64).default('cn'),
  email_attribute: z.string().min(1).max(64).default('mail'),
  group_name_attribute: z.string().min(1).max(64).default('cn'),
  member_attribute: z.string().min(1).max(64).default('member'),
  page_size: z.number().int().min(1).max(5000).default(500),
  /** Bound on connecting, and on each request's answer. */
  connect_timeout_ms: z.number().int().min(100).max(120_000).default(5_000),
  timeout_ms: z.number().int().min(100).max(600_000).default(30_000),
});

/** Settings of a CSV source: none yet; the file comes with each "sync now". */
export const csvSettingsSchema = z.strictObject({});

export type LdapSettings = z.infer<typeof ldapSettingsSchema>;
export type Connector = 'ldap' | 'csv';

/** The settings for `connector`, validated, or a zod error naming the field. */
export function parseSettings(connector: Connector, settings: unknown): LdapSettings | Record<string, never> {
  return connector === 'ldap' ? ldapSettingsSchema.parse(settings) : csvSettingsSchema.parse(settings);
}

/** Settings as shown to administrators: secrets replaced. */
export function presentSettings(
  connector: Connector,
  settings: Record<string, unknown>,
): Record<string, unknown> {
  if (connector !== 'ldap') return settings;
  const { bind_password: _secret, ...shown } = settings;
  return { ...shown, bind_password_set: typeof _secret === 'string' && _secret.length > 0 };
}
