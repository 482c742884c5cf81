import { useState } from 'react';
import { call, describeError } from '../api.js';
import { Notice } from '../components/Notice.js';
import { useLive } from '../live.js';
import { href } from '../router.js';

/** The channels one can see, which one is in, and creating a new one. */
export function Channels() {
  const live = useLive();
  const state = live.state!;
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [priv, setPriv] = useState(false);
  const [feedback, setFeedback] = useState<{ kind: 'error' | 'success'; text: string } | null>(null);
  const [busy, setBusy] = useState(false);

  const channels = [...state.streams.values()].sort((a, b) => a.name.localeCompare(b.name));

  async function create(e: React.FormEvent) {
    e.preventDefault();
    setBusy(true);
    setFeedback(null);
    try {
      await call(live.session, 'POST', '/users/me/subscriptions', {
        subscriptions: [{ name: name.trim(), description }],
        invite_only: priv,
      });
      setFeedback({ kind: 'success', text: `Channel #${name.trim()} is ready.` });
      setName('');
      setDescription('');
    } catch (err) {
      setFeedback({ kind: 'error', text: describeError(err) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby="channels-title">
      <h1 id="channels-title">Channels</h1>
      <ul className="channels" data-testid="channel-list">
        {channels.map((c) => (
          <li key={c.stream_id}>
            <a href={href('channels', c.stream_id)}>
              {c.invite_only ? '🔒 ' : '#'}
              {c.name}
            </a>
            <span className="muted">
              {state.subscribers.get(c.stream_id)?.size ?? c.subscriber_count ?? 0} members
              {state.subscriptions.has(c.stream_id) ? ' · subscribed' : ''}
            </span>
            {c.description && <p className="description">{c.description}</p>}
          </li>
        ))}
      </ul>
      <form onSubmit={create} className="card" aria-labelledby="new-channel">
        <h2 id="new-channel">New channel</h2>
        <label>
          Name
          <input required maxLength={60} value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          Description
          <input maxLength={1024} value={description} onChange={(e) => setDescription(e.target.value)} />
        </label>
        <label className="inline">
          <input type="checkbox" checked={priv} onChange={(e) => setPriv(e.target.checked)} /> Private
        </label>
        {feedback && <Notice kind={feedback.kind}>{feedback.text}</Notice>}
        <button type="submit" disabled={busy || !name.trim()}>
          Create channel
        </button>
      </form>
    </section>
  );
}
