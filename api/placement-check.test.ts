import { place, type Candidate, type PlacementRequest } from '../domain/placement';
import { NO_CAPACITY, UNSATISFIABLE } from '../domain/status-reasons';
import { PLACEMENT_RETRY_AFTER_SECONDS, placementError, storedRefusalError, type Refusal } from './placement-check';
import { candidate as server } from '../domain/placement-fixtures';

const refused = (servers: Candidate[], over: Partial<PlacementRequest>): Refusal => {
  const p = place(servers, { need: { cpu: 1, memoryMb: 1024, diskGb: 5 }, strategy: 'SPREAD', overcommit: 1, ...over });
  if (p.ok) throw new Error('placed');
  return p;
};
const retryAfter = { 'Retry-After': String(PLACEMENT_RETRY_AFTER_SECONDS) };

describe('a refused placement as the API answers it', () => {
  const fleet = [server('box-1.fleet.internal'), server('10.0.0.7', { cordoned: true })];

  it('what no server could take is 422 naming the field; only admins get which server lacked it', () => {
    const p = refused(fleet, { gpu: { count: 1 } });
    const user = placementError(p, { admin: false });
    expect([user.status, user.code, user.message, user.headers]).toEqual([422, 'unsatisfiable', 'constraints.gpu: no server offers this many GPUs', undefined]);
    expect(user.details).toEqual({ fields: [{ field: 'constraints.gpu', message: 'no server offers this many GPUs' }] });
    expect(JSON.stringify(user)).not.toMatch(/box-1|10\.0\.0\.7/);
    expect((placementError(p, { admin: true }).details as { detail: string }).detail).toMatch(/box-1\.fleet\.internal: needs 1 GPU\(s\), has 0/);
  });

  it('a pinned server is named as the request calls it', () => {
    const e = placementError(refused(fleet, { serverId: 'id-gone' }), { admin: true, serverField: 'targetServer' });
    expect([e.status, e.message]).toEqual([422, 'targetServer: no such server']);
  });

  it('what no server can take now is 503 with Retry-After and the short reason', () => {
    const p = refused([server('10.0.0.7', { cordoned: true })], {});
    const user = placementError(p, { admin: false });
    expect([user.status, user.code, user.message, user.details, user.headers]).toEqual([503, 'no_capacity', NO_CAPACITY, undefined, retryAfter]);
    expect((placementError(p, { admin: true }).details as { detail: string }).detail).toMatch(/10\.0\.0\.7: cordoned/);
  });

  it('a reason the workflow stored is answered by its kind; any other failure is not a placement answer', () => {
    const never = storedRefusalError('unsatisfiable: no server in the fleet offers what this workspace asks for (box-1: …)', UNSATISFIABLE, { workspace: {} });
    expect([never?.status, never?.code, never?.message, never?.headers]).toEqual([422, 'unsatisfiable', UNSATISFIABLE, undefined]);
    const later = storedRefusalError('no capacity: every eligible server was filled by concurrent requests', NO_CAPACITY, {});
    expect([later?.status, later?.code, later?.headers]).toEqual([503, 'no_capacity', retryAfter]);
    expect(storedRefusalError('image podex/x:1 is not on the server', 'provisioning failed', {})).toBeNull();
    expect(storedRefusalError(null, 'provisioning failed', {})).toBeNull();
  });
});
