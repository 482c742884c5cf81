import { useEffect, useState } from 'react';
import { authHeader, call, describeError } from '../api.js';
import { Avatar } from '../components/Avatar.js';
import { Notice } from '../components/Notice.js';
import { useLive } from '../live.js';
import type { Session } from '../session.js';

type Feedback = { kind: 'error' | 'success' | 'info'; text: string } | null;

/** Uploads with progress (fetch cannot report upload progress; XMLHttpRequest can). */
function upload(session: Session, file: File, onProgress: (fraction: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/users/me/avatar');
    xhr.setRequestHeader('authorization', authHeader(session));
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new Error('the upload was interrupted'));
    xhr.onload = () => {
      let body: { result?: string; msg?: string } = {};
      try {
        body = JSON.parse(xhr.responseText) as typeof body;
      } catch {
        /* handled below */
      }
      if (xhr.status === 200 && body.result === 'success') resolve();
      else reject(new Error(body.msg ?? `The server answered ${xhr.status}`));
    };
    const form = new FormData();
    form.append('file', file, file.name);
    xhr.send(form);
  });
}

/** One's own name and avatar, each saved explicitly. */
export function Settings() {
  const live = useLive();
  const state = live.state!;
  const me = state.users.get(state.userId)!;
  const [name, setName] = useState(me.full_name);
  const [nameFeedback, setNameFeedback] = useState<Feedback>(null);
  const [file, setFile] = useState<File | null>(null);
  const [preview, setPreview] = useState<string | null>(null);
  const [progress, setProgress] = useState<number | null>(null);
  const [avatarFeedback, setAvatarFeedback] = useState<Feedback>(null);

  useEffect(() => {
    if (!file) return setPreview(null);
    const url = URL.createObjectURL(file);
    setPreview(url);
    return () => URL.revokeObjectURL(url);
  }, [file]);

  async function saveName(e: React.FormEvent) {
    e.preventDefault();
    setNameFeedback(null);
    try {
      await call(live.session, 'PATCH', '/settings', { full_name: name.trim() });
      setNameFeedback({ kind: 'success', text: 'Your name is saved.' });
    } catch (err) {
      setNameFeedback({ kind: 'error', text: describeError(err) });
    }
  }

  async function saveAvatar(e: React.FormEvent) {
    e.preventDefault();
    if (!file) return;
    setAvatarFeedback(null);
    setProgress(0);
    try {
      await upload(live.session, file, setProgress);
      setAvatarFeedback({ kind: 'success', text: 'Your new avatar is saved.' });
      setFile(null);
    } catch (err) {
      setAvatarFeedback({ kind: 'error', text: `The avatar was not changed: ${describeError(err)}` });
    } finally {
      setProgress(null);
    }
  }

  async function removeAvatar() {
    setAvatarFeedback(null);
    try {
      await call(live.session, 'DELETE', '/users/me/avatar');
      setAvatarFeedback({ kind: 'success', text: 'Your avatar is back to the default.' });
    } catch (err) {
      setAvatarFeedback({ kind: 'error', text: describeError(err) });
    }
  }

  return (
    <section aria-labelledby="settings-title">
      <h1 id="settings-title">Settings</h1>
      <form onSubmit={saveName} className="card" aria-labelledby="name-title">
        <h2 id="name-title">Name</h2>
        <label>
          Full name
          <input required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        {nameFeedback && <Notice kind={nameFeedback.kind}>{nameFeedback.text}</Notice>}
        <button type="submit" disabled={!name.trim() || name.trim() === me.full_name}>
          Save name
        </button>
      </form>
      <form onSubmit={saveAvatar} className="card" aria-labelledby="avatar-title">
        <h2 id="avatar-title">Avatar</h2>
        <div className="avatar-edit">
          <figure>
            <Avatar user={me} size={96} />
            <figcaption>Current</figcaption>
          </figure>
          {preview && (
            <figure>
              {/* The server crops to the centred square; the preview shows the same crop. */}
              <img className="avatar preview" src={preview} width={96} height={96} alt="New avatar preview" />
              <figcaption>New (cropped to a square)</figcaption>
            </figure>
          )}
        </div>
        <label>
          Choose an image (JPEG, PNG, WebP, GIF or AVIF)
          <input
            type="file"
            name="avatar"
            accept="image/jpeg,image/png,image/webp,image/gif,image/avif"
            onChange={(e) => {
              setAvatarFeedback(null);
              setFile(e.target.files?.[0] ?? null);
            }}
          />
        </label>
        {progress !== null && (
          <progress value={progress} max={1} aria-label="Upload progress">
            {Math.round(progress * 100)}%
          </progress>
        )}
        {avatarFeedback && <Notice kind={avatarFeedback.kind}>{avatarFeedback.text}</Notice>}
        <div className="actions">
          <button type="submit" disabled={!file || progress !== null}>
            Save avatar
          </button>
          <button type="button" onClick={() => void removeAvatar()} disabled={progress !== null}>
            Remove avatar
          </button>
        </div>
      </form>
    </section>
  );
}
