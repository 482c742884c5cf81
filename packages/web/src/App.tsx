import { lazy, Suspense, useCallback, useEffect, useState } from 'react';
import { describeError } from './api.js';
import { Layout } from './components/Layout.js';
import { ReadyGate } from './components/ReadyGate.js';
import { LiveContext, LiveStore, useLive } from './live.js';
import { Login } from './pages/Login.js';
import { People } from './pages/People.js';
import { Profile } from './pages/Profile.js';
import { useRoute } from './router.js';
import type { Session } from './session.js';
import { clearSession, loadSession, saveSession } from './session.js';

// The people page (where one lands) and profiles are in the first bundle; every other page is
// fetched when first opened, so that the first load carries only what the landing page needs.
const Admin = lazy(() => import('./pages/Admin.js').then((m) => ({ default: m.Admin })));
const Channel = lazy(() => import('./pages/Channel.js').then((m) => ({ default: m.Channel })));
const Channels = lazy(() => import('./pages/Channels.js').then((m) => ({ default: m.Channels })));
const DirectorySources = lazy(() =>
  import('./pages/DirectorySources.js').then((m) => ({ default: m.DirectorySources })),
);
const Settings = lazy(() => import('./pages/Settings.js').then((m) => ({ default: m.Settings })));
const Status = lazy(() => import('./pages/Status.js').then((m) => ({ default: m.Status })));

function Page({ route }: { route: string[] }) {
  const [section, id] = route;
  switch (section) {
    case 'people':
      return id ? <Profile userId={Number(id)} /> : <People />;
    case 'channels':
      return id ? <Channel streamId={Number(id)} /> : <Channels />;
    case 'settings':
      return <Settings />;
    case 'admin':
      return <Admin />;
    case 'directory':
      return <DirectorySources />;
    case 'status':
      return <Status />;
    default:
      return <People />;
  }
}

/** Waits for the first register; until then the page says what it is waiting for. */
function Registered({ children }: { children: React.ReactNode }) {
  const live = useLive();
  if (live.error) return <p role="alert">Could not load the workspace: {live.error}</p>;
  if (!live.state)
    return (
      <main className="loading" aria-busy="true">
        <p>
          {live.status === 'reconnecting' ? 'The server is busy; trying again…' : 'Loading the workspace…'}
        </p>
      </main>
    );
  return <>{children}</>;
}

/**
 * The logged-in app: its live store is created here, inside the ready gate, so that nothing asks
 * for workspace data (register) before the server says it serves it.
 */
function Workspace({ session, onLogout }: { session: Session; onLogout(): void }) {
  const [live, setLive] = useState<LiveStore | null>(null);
  const route = useRoute();

  useEffect(() => {
    const store = new LiveStore(session);
    setLive(store);
    store.start().catch((err: unknown) => {
      // A revoked key (deactivated, or regenerated elsewhere) ends the session.
      if (describeError(err) && (err as { status?: number }).status === 401) onLogout();
    });
    return () => {
      void store.stop();
    };
  }, [session, onLogout]);

  if (!live) return null;
  return (
    <LiveContext.Provider value={live}>
      <Registered>
        <Layout current={route[0] ?? 'people'} onLogout={onLogout}>
          <Suspense fallback={<p className="muted">Loading the page…</p>}>
            <Page route={route} />
          </Suspense>
        </Layout>
      </Registered>
    </LiveContext.Provider>
  );
}

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  const logout = useCallback(() => {
    clearSession();
    setSession(null);
  }, []);

  return (
    <ReadyGate>
      {session ? (
        <Workspace session={session} onLogout={logout} />
      ) : (
        <Login
          onLogin={(s) => {
            saveSession(s);
            setSession(s);
          }}
        />
      )}
    </ReadyGate>
  );
}
