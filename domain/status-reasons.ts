/**
 * What a workspace's owner is told about its status. The stored reason is for operators: a
 * placement refusal lists every server with why it was excluded, an engine error can carry the
 * engine's address. Users get only reasons known to be their own business, in short form.
 */

import { REFUSAL_REASON } from './placement';

/** The short form of a placement refusal (placement's detail names servers, for admins). */
export const NO_CAPACITY = 'no capacity: no server can take this workspace now';
/** The short form of a refusal no server could ever meet (the API's 422 names the fields instead). */
export const UNSATISFIABLE = REFUSAL_REASON.impossible;

const SHORT: [RegExp, (m: RegExpExecArray) => string][] = [
  [/^no capacity\b/, () => NO_CAPACITY],
  [/^unsatisfiable: the chosen server does not exist\b/, () => REFUSAL_REASON.unknownServer],
  [/^unsatisfiable\b/, () => UNSATISFIABLE],
  [/^volume kept$/, (m) => m[0]],
  [/^from snapshot [0-9a-f]{8}$/, (m) => m[0]],
  [/^restore failed while replacing data\b/, () => 'restore failed while replacing data; an administrator can recover it from the snapshot'],
  [/^restore rolled back but the workspace did not start\b/, () => 'restore rolled back but the workspace did not start'],
];

/** The reason as its owner sees it; an unknown reason of a failed workspace becomes a generic one. */
export function reasonForUser(status: string, reason: string | null | undefined): string | null {
  if (!reason) return null;
  for (const [re, short] of SHORT) {
    const m = re.exec(reason);
    if (m) return short(m);
  }
  return status === 'failed' ? 'provisioning failed; an administrator can see why' : null;
}
