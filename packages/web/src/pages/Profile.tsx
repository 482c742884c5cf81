import { Avatar } from '../components/Avatar.js';
import { roleNames, useLive } from '../live.js';
import { href } from '../router.js';

/** One person: avatar, name, role, e-mail, and the channels one can see them in. */
export function Profile({ userId }: { userId: number }) {
  const live = useLive();
  const state = live.state!;
  const user = state.users.get(userId);
  if (!user) return <p role="alert">There is no such person.</p>;
  const channels = [...state.subscribers.entries()]
    .filter(([, members]) => members.has(userId))
    .map(([id]) => state.streams.get(id) ?? state.subscriptions.get(id))
    .filter((s) => s !== undefined);
  return (
    <section aria-labelledby="profile-title" className="profile">
      <Avatar user={user} size={128} />
      <div>
        <h1 id="profile-title">{user.full_name}</h1>
        <p>{roleNames[user.role] ?? `Role ${user.role}`}</p>
        {user.is_active === false && <p className="badge">Deactivated</p>}
        <p>{String(user.delivery_email ?? user.email)}</p>
        <h2>Channels</h2>
        {channels.length === 0 ? (
          <p className="muted">None that you can see.</p>
        ) : (
          <ul>
            {channels.map((c) => (
              <li key={c.stream_id}>
                <a href={href('channels', c.stream_id)}>#{c.name}</a>
              </li>
            ))}
          </ul>
        )}
      </div>
    </section>
  );
}
