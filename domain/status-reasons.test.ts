import { REFUSAL_REASON, withDetail } from './placement';
import { NO_CAPACITY, reasonForUser, UNSATISFIABLE } from './status-reasons';

describe("what a workspace's owner is told", () => {
  it('gives a placement refusal without the fleet inventory', () => {
    const stored = withDetail({ reason: 'no capacity: no server can take this workspace', detail: 'engine-1 (ws-1.fleet.internal): cordoned; engine-2 (10.0.0.2): label gpu=a100 missing' });
    expect(reasonForUser('failed', stored)).toBe(NO_CAPACITY);
    const never = withDetail({ reason: REFUSAL_REASON.impossible, detail: 'engine-1 (ws-1.fleet.internal): needs 1 GPU(s), has 0' });
    expect(reasonForUser('failed', never)).toBe(UNSATISFIABLE);
    expect(UNSATISFIABLE).not.toMatch(/engine|fleet\.internal/);
    const pinned = withDetail({ reason: REFUSAL_REASON.unknownServer, detail: 'server 0b6c… is not registered' });
    expect(reasonForUser('failed', pinned)).toBe('unsatisfiable: the chosen server does not exist');
  });

  it('never passes on an unknown failure, which may carry an engine address', () => {
    expect(reasonForUser('failed', 'connect ECONNREFUSED 10.0.0.5:2376')).toBe('provisioning failed; an administrator can see why');
    expect(reasonForUser('stopped', 'restore rolled back but the workspace did not start: connect ECONNREFUSED 10.0.0.5:2376')).toBe('restore rolled back but the workspace did not start');
    expect(reasonForUser('stopped', 'something new')).toBeNull();
  });

  it('keeps reasons that are the owner’s own business', () => {
    expect(reasonForUser('deleted', 'volume kept')).toBe('volume kept');
    expect(reasonForUser('restoring', 'from snapshot 0123abcd')).toBe('from snapshot 0123abcd');
    expect(reasonForUser('running', null)).toBeNull();
  });
});
