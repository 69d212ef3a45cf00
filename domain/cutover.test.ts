import { defaultRecords, planProblems, reconcile, wantedRecord, type DnsRecord } from './cutover';

const rec = (id: string, type: string, content: string, proxied = true, ttl = 1, name = 'app.podex.dev'): DnsRecord => ({ id, name, type, content, proxied, ttl });
const apply = (current: DnsRecord[], wanted: Omit<DnsRecord, 'id'>[]) => {
  let next = [...current];
  let n = 0;
  for (const a of reconcile(current, wanted)) {
    if (a.op === 'delete') next = next.filter((r) => r.id !== a.id);
    else if (a.op === 'update') next = next.map((r) => (r.id === a.id ? { id: r.id, ...a.record } : r));
    else next.push({ id: `new-${n++}`, ...a.record });
  }
  return next;
};

describe('cutover records', () => {
  it('defaults to the Phase 8 table, with ws-* served by the wildcard', () => {
    const specs = defaultRecords('203.0.113.10', 'podex.dev');
    expect(specs.map((s) => [s.name, s.type, s.proxied])).toEqual([
      ['@', 'A', true],
      ['www', 'CNAME', true],
      ['app', 'A', true],
      ['api', 'A', true],
      ['*', 'A', true],
      ['coolify', 'A', false],
    ]);
    expect(wantedRecord(specs[1], 'podex.dev')).toEqual({ name: 'www.podex.dev', type: 'CNAME', content: 'podex.dev', proxied: true, ttl: 1 });
  });

  it('updates a record of the same type in place and keeps one that is already right', () => {
    const want = [wantedRecord({ name: 'app', type: 'A', content: '203.0.113.10', proxied: true, ttl: 1 }, 'podex.dev')];
    expect(reconcile([rec('1', 'A', '34.1.1.1')], want)).toEqual([{ op: 'update', id: '1', record: want[0] }]);
    expect(reconcile([rec('1', 'A', '203.0.113.10')], want)).toEqual([]);
  });

  it('replaces an A by a CNAME with the delete first, and leaves TXT records alone', () => {
    const want = [{ name: 'app.podex.dev', type: 'CNAME', content: 'podex.dev', proxied: true, ttl: 1 }];
    const actions = reconcile([rec('1', 'A', '34.1.1.1'), rec('2', 'TXT', 'hello', false, 300)], want);
    expect(actions).toEqual([{ op: 'delete', id: '1' }, { op: 'create', record: want[0] }]);
  });

  it('is idempotent and restores a captured state exactly, TTLs included', () => {
    const captured = [rec('1', 'A', '34.1.1.1', false, 3600), rec('2', 'A', '34.1.1.2', false, 3600)];
    const switched = apply(captured, [{ name: 'app.podex.dev', type: 'A', content: '203.0.113.10', proxied: true, ttl: 1 }]);
    expect(switched.map((r) => r.content)).toEqual(['203.0.113.10']);
    expect(reconcile(switched, [{ name: 'app.podex.dev', type: 'A', content: '203.0.113.10', proxied: true, ttl: 1 }])).toEqual([]);
    const restored = apply(switched, captured.map(({ id: _id, ...r }) => r));
    expect(restored.map(({ id: _id, ...r }) => r).sort((a, b) => a.content.localeCompare(b.content))).toEqual(captured.map(({ id: _id, ...r }) => r));
  });

  it('finds plan contradictions Cloudflare would refuse', () => {
    expect(planProblems([{ name: 'ws-*', type: 'A', content: '1.2.3.4', proxied: true, ttl: 1 }], 'podex.dev')[0].message).toMatch(/wildcard/);
    expect(
      planProblems(
        [
          { name: 'www', type: 'CNAME', content: 'podex.dev', proxied: true, ttl: 1 },
          { name: 'www', type: 'A', content: '1.2.3.4', proxied: true, ttl: 1 },
        ],
        'podex.dev',
      ),
    ).toEqual([{ field: 'records.1.name', message: expect.stringMatching(/CNAME may not share/) }]);
    expect(planProblems(defaultRecords('1.2.3.4', 'podex.dev'), 'podex.dev')).toEqual([]);
  });
});
