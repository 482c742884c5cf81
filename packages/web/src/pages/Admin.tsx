import { useDeferredValue, useState } from 'react';
import { call, describeError } from '../api.js';
import { Avatar } from '../components/Avatar.js';
import { Notice } from '../components/Notice.js';
import { isAdmin, roleNames, sortedUsers, useLive } from '../live.js';

type Feedback = { kind: 'error' | 'success'; text: string } | null;

/** Creating people, changing roles, deactivating and reactivating. */
export function Admin() {
  const live = useLive();
  const state = live.state!;
  const me = state.users.get(state.userId);
  const [feedback, setFeedback] = useState<Feedback>(null);
  const [query, setQuery] = useState('');
  const q = useDeferredValue(query.trim().toLowerCase());
  const [form, setForm] = useState({ email: '', full_name: '', password: '' });
  if (!isAdmin(me)) return <p role="alert">Only administrators can see this page.</p>;

  async function act(fn: () => Promise<unknown>, ok: string) {
    setFeedback(null);
    try {
      await fn();
      setFeedback({ kind: 'success', text: ok });
      return true;
    } catch (err) {
      setFeedback({ kind: 'error', text: describeError(err) });
      return false;
    }
  }

  const people = sortedUsers(state)
    .filter((u) => !q || u.full_name.toLowerCase().includes(q) || u.email.toLowerCase().includes(q))
    .slice(0, 300);

  return (
    <section aria-labelledby="admin-title">
      <h1 id="admin-title">Administration</h1>
      {feedback && <Notice kind={feedback.kind}>{feedback.text}</Notice>}
      <form
        className="card"
        aria-labelledby="create-title"
        onSubmit={(e) => {
          e.preventDefault();
          void act(
            () => call(live.session, 'POST', '/users', form),
            `${form.full_name} can now log in as ${form.email}.`,
          ).then((ok) => ok && setForm({ email: '', full_name: '', password: '' }));
        }}
      >
        <h2 id="create-title">Create a user</h2>
        <label>
          E-mail
          <input
            type="email"
            required
            value={form.email}
            onChange={(e) => setForm({ ...form, email: e.target.value })}
          />
        </label>
        <label>
          Full name
          <input
            required
            maxLength={100}
            value={form.full_name}
            onChange={(e) => setForm({ ...form, full_name: e.target.value })}
          />
        </label>
        <label>
          Initial password
          <input
            type="password"
            required
            minLength={6}
            autoComplete="new-password"
            value={form.password}
            onChange={(e) => setForm({ ...form, password: e.target.value })}
          />
        </label>
        <button type="submit">Create user</button>
      </form>

      <h2 id="users-title">Users</h2>
      <label className="search">
        Filter users
        <input type="search" value={query} onChange={(e) => setQuery(e.target.value)} />
      </label>
      <table className="users" aria-labelledby="users-title">
        <thead>
          <tr>
            <th scope="col">Person</th>
            <th scope="col">Role</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {people.map((u) => (
            <tr key={u.user_id} data-user-id={u.user_id}>
              <td>
                <Avatar user={u} size={24} /> {u.full_name}
              </td>
              <td>
                <select
                  aria-label={`Role of ${u.full_name}`}
                  value={u.role}
                  disabled={u.user_id === state.userId}
                  onChange={(e) =>
                    void act(
                      () =>
                        call(live.session, 'PATCH', `/users/${u.user_id}`, { role: Number(e.target.value) }),
                      `${u.full_name} is now ${roleNames[Number(e.target.value)]}.`,
                    )
                  }
                >
                  {[100, 200, 400, 600].map((r) => (
                    <option key={r} value={r}>
                      {roleNames[r]}
                    </option>
                  ))}
                </select>
              </td>
              <td>
                {u.is_active === false ? (
                  <button
                    type="button"
                    onClick={() =>
                      void act(
                        () => call(live.session, 'POST', `/users/${u.user_id}/reactivate`),
                        `${u.full_name} is active again.`,
                      )
                    }
                  >
                    Reactivate
                  </button>
                ) : (
                  <button
                    type="button"
                    disabled={u.user_id === state.userId}
                    onClick={() =>
                      void act(
                        () => call(live.session, 'DELETE', `/users/${u.user_id}`),
                        `${u.full_name} is deactivated.`,
                      )
                    }
                  >
                    Deactivate
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
