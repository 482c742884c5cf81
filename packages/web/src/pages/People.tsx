import { useDeferredValue, useState } from 'react';
import { Avatar } from '../components/Avatar.js';
import { roleNames, sortedUsers, useLive } from '../live.js';
import { href } from '../router.js';

/** Everyone in the workspace, searchable; deactivated people are shown as such. */
export function People() {
  const live = useLive();
  const [query, setQuery] = useState('');
  const deferred = useDeferredValue(query.trim().toLowerCase());
  const state = live.state!;
  const people = sortedUsers(state).filter(
    (u) =>
      !deferred ||
      u.full_name.toLowerCase().includes(deferred) ||
      (u.delivery_email ?? u.email).toLowerCase().includes(deferred),
  );
  const shown = people.slice(0, 500);
  return (
    <section aria-labelledby="people-title">
      <h1 id="people-title">People</h1>
      <label className="search">
        Search people
        <input type="search" value={query} onChange={(e) => setQuery(e.target.value)} />
      </label>
      <p className="muted" role="status">
        {people.length === state.users.size
          ? `${people.length.toLocaleString('en')} people`
          : `${people.length.toLocaleString('en')} of ${state.users.size.toLocaleString('en')} people match`}
        {shown.length < people.length ? ` (showing the first ${shown.length})` : ''}
      </p>
      <ul className="people" data-testid="people-list">
        {shown.map((u) => (
          <li
            key={u.user_id}
            className={u.is_active === false ? 'inactive' : undefined}
            data-user-id={u.user_id}
          >
            <a href={href('people', u.user_id)}>
              <Avatar user={u} size={40} />
              <span className="name">{u.full_name}</span>
            </a>
            <span className="role">{roleNames[u.role] ?? `Role ${u.role}`}</span>
            {u.is_active === false && <span className="badge">Deactivated</span>}
          </li>
        ))}
      </ul>
    </section>
  );
}
