/** Who is logged in: kept in localStorage so that a reload stays logged in. */
export interface Session {
  email: string;
  apiKey: string;
  userId: number;
}

const KEY = 'concord.session';

export function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Partial<Session>;
    return typeof s.email === 'string' && typeof s.apiKey === 'string' && typeof s.userId === 'number'
      ? (s as Session)
      : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session): void {
  localStorage.setItem(KEY, JSON.stringify(s));
}

export function clearSession(): void {
  localStorage.removeItem(KEY);
}
