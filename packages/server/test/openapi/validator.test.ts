import { describe, expect, it } from 'vitest';
import { zulipContract } from '../support/openapi.js';

/** The validator every API test relies on must be able to say no. */
describe("Zulip's OpenAPI contract", () => {
  const contract = zulipContract();
  const user = {
    user_id: 7,
    delivery_email: 'a@example.com',
    email: 'a@example.com',
    full_name: 'A Person',
    date_joined: '2026-01-01T00:00:00Z',
    is_active: true,
    is_owner: false,
    is_admin: false,
    is_guest: false,
    is_bot: false,
    bot_type: null,
    bot_owner_id: null,
    role: 400,
    timezone: '',
    avatar_url: 'http://x/avatar/7',
    avatar_version: 1,
    profile_data: {},
  };

  it('accepts a valid user and a valid error', () => {
    expect(() =>
      contract.validateResponse('GET', '/users/7', 200, { result: 'success', msg: '', user }),
    ).not.toThrow();
    expect(() =>
      contract.validateResponse('GET', '/users/7', 401, {
        result: 'error',
        msg: 'Account is deactivated',
        code: 'USER_DEACTIVATED',
      }),
    ).not.toThrow();
  });

  it('rejects a missing required key, a wrong type and an extra property', () => {
    // The spec requires few keys (result and msg here); those it requires must be there.
    expect(() => contract.validateResponse('GET', '/users/7', 200, { result: 'success', user })).toThrow(
      /msg/,
    );
    expect(() =>
      contract.validateResponse('GET', '/users/7', 200, {
        result: 'success',
        msg: '',
        user: { ...user, role: 'member' },
      }),
    ).toThrow(/role/);
    expect(() =>
      contract.validateResponse('GET', '/users/7', 200, { result: 'success', msg: '', user, surprise: 1 }),
    ).toThrow(/additional/);
  });

  it('rejects an error without a code, and a success on an undocumented endpoint', () => {
    expect(() =>
      contract.validateResponse('GET', '/users/7', 404, { result: 'error', msg: 'No such user' }),
    ).toThrow();
    expect(() =>
      contract.validateResponse('GET', '/no/such/endpoint', 200, { result: 'success', msg: '' }),
    ).toThrow(/not in Zulip's OpenAPI/);
  });

  it('validates events by type and op', () => {
    const ok = { type: 'subscription', op: 'peer_remove', stream_ids: [1], user_ids: [2], id: 3 };
    expect(() => contract.validateEvent(ok)).not.toThrow();
    expect(() => contract.validateEvent({ ...ok, user_ids: 2 })).toThrow(/user_ids/);
    expect(() =>
      contract.validateEvent({
        type: 'realm_user',
        op: 'update',
        person: { user_id: 1, full_name: 7 },
        id: 0,
      }),
    ).toThrow();
    expect(() => contract.validateEvent({ type: 'nonsense', id: 0 })).toThrow(/No Zulip event schema/);
  });
});
