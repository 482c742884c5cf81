import { useId, useState } from 'react';

/** A directory source as the API presents it (server: jobs/directory/sources.ts). */
export interface Source {
  id: number;
  name: string;
  connector: 'csv' | 'ldap';
  settings: Record<string, unknown>;
  schedule_seconds: number | null;
  deactivate_missing: boolean;
  date_created: number;
}

/** What the form sends: the API's parameters for create (all) and edit (no connector). */
export interface SourceInput {
  name: string;
  connector: 'csv' | 'ldap';
  settings: Record<string, unknown>;
  schedule_seconds: number | null;
  deactivate_missing: boolean;
}

const ldapFields: { key: string; label: string; required?: boolean; placeholder?: string }[] = [
  { key: 'url', label: 'Server URL', required: true, placeholder: 'ldaps://ldap.example.org' },
  {
    key: 'bind_dn',
    label: 'Bind DN',
    required: true,
    placeholder: 'cn=concord,ou=services,dc=example,dc=org',
  },
  { key: 'user_base_dn', label: 'Users base DN', required: true, placeholder: 'ou=people,dc=example,dc=org' },
  { key: 'group_base_dn', label: 'Groups base DN (optional)', placeholder: 'ou=groups,dc=example,dc=org' },
  { key: 'user_filter', label: 'User filter', placeholder: '(objectClass=inetOrgPerson)' },
  { key: 'group_filter', label: 'Group filter', placeholder: '(objectClass=groupOfNames)' },
  { key: 'id_attribute', label: 'ID attribute', placeholder: 'uid' },
  { key: 'name_attribute', label: 'Name attribute', placeholder: 'cn' },
  { key: 'email_attribute', label: 'E-mail attribute', placeholder: 'mail' },
];

/**
 * Creating or editing a directory source. LDAP settings are sent only when filled in, so an edit
 * keeps the stored bind password unless a new one is typed (the server merges settings).
 */
export function SourceForm({
  initial,
  onSubmit,
  onCancel,
}: {
  initial?: Source;
  onSubmit(input: SourceInput): Promise<boolean>;
  onCancel?(): void;
}) {
  const id = useId();
  const [name, setName] = useState(initial?.name ?? '');
  const [connector, setConnector] = useState<'csv' | 'ldap'>(initial?.connector ?? 'csv');
  const [settings, setSettings] = useState<Record<string, string>>(() =>
    Object.fromEntries(
      Object.entries(initial?.settings ?? {})
        .filter(([, v]) => typeof v === 'string')
        .map(([k, v]) => [k, String(v)]),
    ),
  );
  const [password, setPassword] = useState('');
  const [hours, setHours] = useState(
    initial?.schedule_seconds ? String(initial.schedule_seconds / 3600) : '',
  );
  const [deactivate, setDeactivate] = useState(initial?.deactivate_missing ?? false);
  const [busy, setBusy] = useState(false);

  async function submit(e: React.FormEvent) {
    e.preventDefault();
    const ldap: Record<string, unknown> = {};
    for (const f of ldapFields) {
      const v = settings[f.key]?.trim();
      if (v) ldap[f.key] = v;
      else if (f.key === 'group_base_dn' && initial) ldap[f.key] = null;
    }
    if (password) ldap.bind_password = password;
    else if (!initial) ldap.bind_password = '';
    setBusy(true);
    const ok = await onSubmit({
      name: name.trim(),
      connector,
      settings: connector === 'ldap' ? ldap : {},
      schedule_seconds: connector === 'ldap' && hours ? Math.round(Number(hours) * 3600) : null,
      deactivate_missing: deactivate,
    });
    setBusy(false);
    if (ok && !initial) {
      setName('');
      setSettings({});
      setPassword('');
      setHours('');
      setDeactivate(false);
    }
  }

  const title = initial ? `Edit ${initial.name}` : 'New directory source';
  return (
    <form className="card" onSubmit={(e) => void submit(e)} aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>{title}</h2>
      <label>
        Name
        <input required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
      </label>
      {!initial && (
        <fieldset className="inline-choices">
          <legend>Kind</legend>
          {(['csv', 'ldap'] as const).map((c) => (
            <label key={c} className="inline">
              <input
                type="radio"
                name={`${id}-connector`}
                value={c}
                checked={connector === c}
                onChange={() => setConnector(c)}
              />
              {c === 'csv' ? 'CSV file (uploaded with each sync)' : 'LDAP directory'}
            </label>
          ))}
        </fieldset>
      )}
      {connector === 'ldap' && (
        <div className="field-grid">
          {ldapFields.map((f) => (
            <label key={f.key}>
              {f.label}
              <input
                required={f.required && !initial}
                placeholder={f.placeholder}
                value={settings[f.key] ?? ''}
                onChange={(e) => setSettings({ ...settings, [f.key]: e.target.value })}
              />
            </label>
          ))}
          <label>
            {initial?.settings.bind_password_set ? 'Bind password (leave empty to keep)' : 'Bind password'}
            <input
              type="password"
              autoComplete="new-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          </label>
          <label>
            Sync every (hours; empty for manual only)
            <input
              type="number"
              min={1 / 60}
              step="any"
              inputMode="decimal"
              value={hours}
              onChange={(e) => setHours(e.target.value)}
            />
          </label>
        </div>
      )}
      <label className="inline">
        <input type="checkbox" checked={deactivate} onChange={(e) => setDeactivate(e.target.checked)} />
        Deactivate people who are no longer in the directory
      </label>
      <div className="actions">
        <button type="submit" disabled={busy || !name.trim()}>
          {initial ? 'Save changes' : 'Create source'}
        </button>
        {onCancel && (
          <button type="button" className="secondary" onClick={onCancel}>
            Cancel
          </button>
        )}
      </div>
    </form>
  );
}
