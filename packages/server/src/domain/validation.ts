import { z } from 'zod';
import { fail } from '../errors.js';

/** Zulip's limits for names, as advertised in server_settings / register. */
export const limits = {
  fullName: 100,
  streamName: 60,
  streamDescription: 1024,
  email: 254,
} as const;

// Control characters and the Unicode "Other" categories make names unreadable or spoofable; a
// lone surrogate (Cs) is not text at all, and SQLite would store it as bytes that read back as
// three replacement characters, so the stored name would differ from the one accepted.
const unprintable = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}]/u;

/** A trimmed user full name, or a BAD_REQUEST naming the rule it breaks. */
export function checkFullName(value: string): string {
  const name = value.trim();
  if (name.length === 0) throw fail.invalid('full_name', 'name cannot be blank');
  if (name.length > limits.fullName)
    throw fail.invalid('full_name', `name is longer than ${limits.fullName} characters`);
  if (unprintable.test(name)) throw fail.invalid('full_name', 'name contains invalid characters');
  return name;
}

/** A trimmed channel name, or a BAD_REQUEST naming the parameter and the rule it breaks. */
export function checkStreamName(value: string, field = 'name'): string {
  const name = value.trim();
  if (name.length === 0) throw fail.invalid(field, 'channel name cannot be blank');
  if (name.length > limits.streamName)
    throw fail.invalid(field, `channel name is longer than ${limits.streamName} characters`);
  if (unprintable.test(name)) throw fail.invalid(field, 'channel name contains invalid characters');
  return name;
}

/** A channel description within the limit, or a BAD_REQUEST naming the parameter. */
export function checkStreamDescription(value: string, field = 'description'): string {
  if (value.length > limits.streamDescription)
    throw fail.invalid(field, `channel description is longer than ${limits.streamDescription} characters`);
  if (/[\p{Cc}\p{Cs}]/u.test(value.replace(/[\n\t]/g, '')))
    throw fail.invalid(field, 'channel description contains invalid characters');
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
