import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { apiKeysEqual, generateApiKey } from './apiKey.js';

describe('apiKeysEqual', () => {
  it('is true exactly when the two keys are the same string', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }), (a, b) => {
        expect(apiKeysEqual(a, b)).toBe(a === b);
        expect(apiKeysEqual(a, a)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses keys that differ in one character, a prefix, an extension or the empty key', () => {
    const key = generateApiKey();
    expect(key).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(apiKeysEqual(key, key)).toBe(true);
    for (let i = 0; i < key.length; i++) {
      const flipped = key.slice(0, i) + (key[i] === 'A' ? 'B' : 'A') + key.slice(i + 1);
      expect(apiKeysEqual(flipped, key)).toBe(false);
    }
    expect(apiKeysEqual(key.slice(0, 31), key)).toBe(false);
    expect(apiKeysEqual(`${key}x`, key)).toBe(false);
    expect(apiKeysEqual('', key)).toBe(false);
    expect(apiKeysEqual(key, '')).toBe(false);
    // A given key that repeats the stored one must not match by wrapping around it.
    expect(apiKeysEqual(key + key, key)).toBe(false);
  });
});
