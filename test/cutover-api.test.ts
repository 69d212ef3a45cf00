import { randomBytes } from 'node:crypto';
import { startHarness, eventually, type Harness } from './harness';

describe('cutover API', () => {
  let h: Harness;
  const zoneId = randomBytes(16).toString('hex');
  const valid = { zoneId, targetIp: '203.0.113.10', healthUrls: ['http://127.0.0.1:9/healthz'], autoApprove: false };

  beforeAll(async () => {
    // No Cloudflare token in this worker's configuration: the pre-flight must stop the cutover.
    h = await startHarness('cutover-api', {}, { overrides: { cloudflare: {} } });
  });
  afterAll(async () => {
    await h.call('POST', `/cutovers/cutover-${zoneId}/rollback`, { body: {} });
    await h.close();
  });

  it.each([
    [{ ...valid, zoneId: undefined }, /zoneId/],
    [{ ...valid, zoneId: 'example.com' }, /zoneId: must be a Cloudflare zone id/],
    [{ ...valid, targetIp: '300.1.1.1' }, /targetIp: must be an IPv4 or IPv6 address/],
    [{ ...valid, records: [{ name: 'app', type: 'SRV', content: 'x' }] }, /records\.0\.type: must be A, AAAA or CNAME/],
    [{ ...valid, records: [{ name: 'app', type: 'A', content: 'not-an-ip' }] }, /records\.0\.content: must be an IPv4 address/],
    [{ ...valid, records: [{ name: 'ws-*', type: 'A', content: '203.0.113.10' }] }, /records\.0\.name: .*wildcard is a whole leftmost label/],
    [{ ...valid, records: [{ name: 'www', type: 'CNAME', content: 'podex.dev' }, { name: 'www', type: 'A', content: '203.0.113.10' }] }, /records\.1\.name: .*CNAME may not share/],
    [{ ...valid, healthUrls: ['nope'] }, /healthUrls\.0: must be a URL/],
  ])('refuses an invalid plan with 400 naming the field (%#)', async (body, message) => {
    const res = await h.call('POST', '/cutovers', { body });
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(message);
  });

  it('starts a cutover, shows its checklist, refuses a second one for the zone and signals to an ended one', async () => {
    expect((await h.call('POST', '/cutovers', { token: h.userToken, body: valid })).status).toBe(403);
    const res = await h.call('POST', '/cutovers', { body: valid });
    expect(res.status).toBe(202);
    expect(res.body.id).toBe(`cutover-${zoneId}`);
    const ended = await eventually(async () => {
      const g = await h.call('GET', `/cutovers/${res.body.id}`);
      return g.body.workflowStatus === 'FAILED' ? g.body : undefined;
    }, 60_000);
    expect(ended.state).toMatchObject({ phase: 'failed', outcome: 'failed', switched: [], captured: {} });
    expect(ended.state.checklist.find((c: { item: string }) => c.item === 'Cloudflare token may edit the zone')).toMatchObject({ ok: false, detail: expect.stringMatching(/CLOUDFLARE_API_TOKEN is not set/) });
    expect((await h.call('POST', `/cutovers/${res.body.id}/approve`, { body: {} })).status).toBe(409);
    expect((await h.call('GET', '/cutovers/cutover-0123')).status).toBe(400);
    expect((await h.call('GET', `/cutovers/cutover-${'0'.repeat(32)}`)).status).toBe(404);
  });
});
