import { href } from '../router.js';
import { isAdmin, useLive } from '../live.js';
import { Avatar } from './Avatar.js';

const sections: { id: string; label: string; admin?: boolean }[] = [
  { id: 'people', label: 'People' },
  { id: 'channels', label: 'Channels' },
  { id: 'settings', label: 'Settings' },
  { id: 'admin', label: 'Administration', admin: true },
  { id: 'directory', label: 'Directory sources', admin: true },
  { id: 'status', label: 'Server status' },
];

/** The header (own avatar, navigation, connection state) around every page. */
export function Layout({
  current,
  onLogout,
  children,
}: {
  current: string;
  onLogout(): void;
  children: React.ReactNode;
}) {
  const live = useLive();
  const me = live.state?.users.get(live.state.userId);
  return (
    <>
      <button type="button" className="skip" onClick={() => document.getElementById('main')?.focus()}>
        Skip to content
      </button>
      <header className="header">
        <a className="brand" href={href('people')}>
          Concord
        </a>
        <nav aria-label="Main">
          <ul>
            {sections
              .filter((s) => !s.admin || isAdmin(me))
              .map((s) => (
                <li key={s.id}>
                  <a href={href(s.id)} aria-current={current === s.id ? 'page' : undefined}>
                    {s.label}
                  </a>
                </li>
              ))}
          </ul>
        </nav>
        {live.status === 'reconnecting' && (
          <span className="reconnecting" role="status" data-testid="reconnecting">
            Reconnecting…
          </span>
        )}
        {me && (
          <a className="me" href={href('people', me.user_id)} data-testid="header-me">
            <Avatar user={me} size={28} />
            <span>{me.full_name}</span>
          </a>
        )}
        <button type="button" className="link" onClick={onLogout}>
          Log out
        </button>
      </header>
      <main className="page" id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}
