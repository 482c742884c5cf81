import { useState } from 'react';
import { call, describeError } from '../api.js';
import { Avatar } from '../components/Avatar.js';
import { Notice } from '../components/Notice.js';
import { sortedUsers, useLive } from '../live.js';
import { href } from '../router.js';

/** One channel and its live member list. */
export function Channel({ streamId }: { streamId: number }) {
  const live = useLive();
  const state = live.state!;
  const [feedback, setFeedback] = useState<{ kind: 'error' | 'success'; text: string } | null>(null);
  const [adding, setAdding] = useState('');
  const stream = state.streams.get(streamId) ?? state.subscriptions.get(streamId);
  if (!stream) return <p role="alert">This channel does not exist or you cannot see it.</p>;
  const memberIds = state.subscribers.get(streamId) ?? new Set<number>();
  // A deactivated person is no member of anything: the server sends peer_remove on deactivation.
  const members = sortedUsers(state).filter((u) => memberIds.has(u.user_id));
  const others = sortedUsers(state).filter((u) => u.is_active !== false && !memberIds.has(u.user_id));
  const subscribed = state.subscriptions.has(streamId);

  async function act(fn: () => Promise<unknown>, ok: string) {
    setFeedback(null);
    try {
      await fn();
      setFeedback({ kind: 'success', text: ok });
    } catch (err) {
      setFeedback({ kind: 'error', text: describeError(err) });
    }
  }

  return (
    <section aria-labelledby="channel-title">
      <p>
        <a href={href('channels')}>← Channels</a>
      </p>
      <h1 id="channel-title">
        {stream.invite_only ? '🔒 ' : '#'}
        {stream.name}
      </h1>
      {stream.description && <p className="description">{stream.description}</p>}
      <div className="actions">
        {subscribed ? (
          <button
            type="button"
            onClick={() =>
              act(
                () =>
                  call(live.session, 'DELETE', '/users/me/subscriptions', { subscriptions: [stream.name] }),
                `You left #${stream.name}.`,
              )
            }
          >
            Leave
          </button>
        ) : (
          <button
            type="button"
            onClick={() =>
              act(
                () =>
                  call(live.session, 'POST', '/users/me/subscriptions', {
                    subscriptions: [{ name: stream.name }],
                  }),
                `You joined #${stream.name}.`,
              )
            }
          >
            Join
          </button>
        )}
      </div>
      <h2 id="members-title">Members ({members.length})</h2>
      <ul className="people" aria-labelledby="members-title" data-testid="member-list">
        {members.map((u) => (
          <li key={u.user_id} data-user-id={u.user_id}>
            <a href={href('people', u.user_id)}>
              <Avatar user={u} size={32} />
              <span className="name">{u.full_name}</span>
            </a>
          </li>
        ))}
      </ul>
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          const id = Number(adding);
          if (!id) return;
          void act(
            () =>
              call(live.session, 'POST', '/users/me/subscriptions', {
                subscriptions: [{ name: stream.name }],
                principals: [id],
              }),
            `${state.users.get(id)?.full_name ?? 'They'} joined #${stream.name}.`,
          ).then(() => setAdding(''));
        }}
      >
        <label>
          Add a member
          <select value={adding} onChange={(e) => setAdding(e.target.value)}>
            <option value="">Choose a person…</option>
            {others.slice(0, 1000).map((u) => (
              <option key={u.user_id} value={u.user_id}>
                {u.full_name}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={!adding}>
          Add
        </button>
      </form>
      {feedback && <Notice kind={feedback.kind}>{feedback.text}</Notice>}
    </section>
  );
}
