import { createHash, randomInt, timingSafeEqual } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A new API key: 32 random alphanumeric characters, as Zulip issues them (~190 bits). */
export function generateApiKey(): string {
  let key = '';
  for (let i = 0; i < 32; i++) key += ALPHABET[randomInt(ALPHABET.length)];
  return key;
}

/**
 * Compares two API keys in constant time. Hashing first gives equal-length inputs, so even the
 * length of the stored key does not leak through timing.
 */
export function apiKeysEqual(given: string, stored: string): boolean {
  return timingSafeEqual(digest(given), storedDigest(stored));
}

const digest = (key: string) => createHash('sha256').update(key).digest();

// Stored keys are compared on every request: their digests are kept (a few thousand at most, the
// active keys of a workspace), so each request hashes only the key it was given.
const storedDigests = new Map<string, Buffer>();
function storedDigest(stored: string): Buffer {
  let d = storedDigests.get(stored);
  if (!d) {
    if (storedDigests.size >= 10_000) storedDigests.clear();
    storedDigests.set(stored, (d = digest(stored)));
  }
  return d;
}
