import { useEffect, useState } from 'react';
import { describeError } from './api.js';
import { Layout } from './components/Layout.js';
import { ReadyGate } from './components/ReadyGate.js';
import { LiveContext, LiveStore, useLive } from './live.js';
import { Admin } from './pages/Admin.js';
import { Channel } from './pages/Channel.js';
import { Channels } from './pages/Channels.js';
import { DirectorySources } from './pages/DirectorySources.js';
import { Login } from './pages/Login.js';
import { People } from './pages/People.js';
import { Profile } from './pages/Profile.js';
import { Settings } from './pages/Settings.js';
import { Status } from './pages/Status.js';
import { useRoute } from './router.js';
import type { Session } from './session.js';
import { clearSession, loadSession, saveSession } from './session.js';

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

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  const [live, setLive] = useState<LiveStore | null>(null);
  const route = useRoute();

  useEffect(() => {
    if (!session) return;
    const store = new LiveStore(session);
    setLive(store);
    store.start().catch((err: unknown) => {
      // A revoked key (deactivated, or regenerated elsewhere) ends the session.
      if (describeError(err) && (err as { status?: number }).status === 401) {
        clearSession();
        setSession(null);
      }
    });
    return () => {
      void store.stop();
    };
  }, [session]);

  return (
    <ReadyGate>
      {!session ? (
        <Login
          onLogin={(s) => {
            saveSession(s);
            setSession(s);
          }}
        />
      ) : live ? (
        <LiveContext.Provider value={live}>
          <Registered>
            <Layout
              current={route[0] ?? 'people'}
              onLogout={() => {
                clearSession();
                setSession(null);
                setLive(null);
              }}
            >
              <Page route={route} />
            </Layout>
          </Registered>
        </LiveContext.Provider>
      ) : null}
    </ReadyGate>
  );
}
