/** Zulip's role values. Concord implements owner, administrator, member and guest. */
export const Role = {
  OWNER: 100,
  ADMINISTRATOR: 200,
  MEMBER: 400,
  GUEST: 600,
} as const;

export type RoleValue = (typeof Role)[keyof typeof Role];

export const roleValues: readonly number[] = Object.values(Role);

/** The authenticated user a command acts for. */
export interface Actor {
  id: number;
  realm_id: number;
  role: number;
  is_active: number;
}

export const isOwner = (role: number): boolean => role === Role.OWNER;
export const isAdmin = (role: number): boolean => role === Role.OWNER || role === Role.ADMINISTRATOR;
export const isGuest = (role: number): boolean => role === Role.GUEST;
