import { useEffect, useState } from 'react';

/** The current hash route as path segments: `#/people/7` → ['people', '7']. */
function current(): string[] {
  return location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
}

export function useRoute(): string[] {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const onChange = () => setRoute(current());
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

export const href = (...parts: (string | number)[]) =>
  `#/${parts.map((p) => encodeURIComponent(String(p))).join('/')}`;

export function navigate(...parts: (string | number)[]): void {
  location.hash = href(...parts);
}
