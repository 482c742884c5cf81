import { z } from 'zod';
import { fail } from '../errors.js';

/** Zulip's limits for names, as advertised in server_settings / register. */
export const limits = {
  fullName: 100,
  streamName: 60,
  streamDescription: 1024,
  email: 254,
} as const;

// Control characters and the Unicode "Other" categories make names unreadable or spoofable.
const unprintable = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}]/u;

/** A trimmed user full name, or a BAD_REQUEST naming the rule it breaks. */
export function checkFullName(value: string): string {
  const name = value.trim();
  if (name.length === 0) throw fail.invalid('full_name', 'name cannot be blank');
  if (name.length > limits.fullName)
    throw fail.invalid('full_name', `name is longer than ${limits.fullName} characters`);
  if (unprintable.test(name)) throw fail.invalid('full_name', 'name contains invalid characters');
  return name;
}

/** A trimmed channel name, or a BAD_REQUEST naming the rule it breaks. */
export function checkStreamName(value: string): string {
  const name = value.trim();
  if (name.length === 0) throw fail.badRequest('Channel name cannot be blank.');
  if (name.length > limits.streamName)
    throw fail.badRequest(`Channel name is too long (limit: ${limits.streamName} characters).`);
  if (unprintable.test(name)) throw fail.badRequest(`Invalid character in channel name.`);
  return name;
}

/** A channel description within the limit. */
export function checkStreamDescription(value: string): string {
  if (value.length > limits.streamDescription)
    throw fail.badRequest(`Channel description is too long (limit: ${limits.streamDescription} characters).`);
  if (/[\p{Cc}]/u.test(value.replace(/[\n\t]/g, '')))
    throw fail.badRequest('Invalid character in channel description.');
  return value;
}

const emailSchema = z.email();

/** A syntactically valid e-mail address, or a BAD_REQUEST. */
export function checkEmail(value: string, field = 'email'): string {
  const email = value.trim();
  if (email.length > limits.email)
    throw fail.invalid(field, `address is longer than ${limits.email} characters`);
  if (!emailSchema.safeParse(email).success)
    throw fail.invalid(field, `'${value}' is not a valid e-mail address`);
  return email;
}
