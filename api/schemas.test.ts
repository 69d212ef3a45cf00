import { maintenanceBody } from './schemas';

describe('maintenanceBody', () => {
  it('refuses a start PostgreSQL cannot store (year 0, as the contract test generated), naming startsAt', () => {
    const r = maintenanceBody.safeParse({ startsAt: '0000-02-29T21:30:00+23:00', endsAt: '2904-02-29T18:54:46.4Z' });
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['startsAt', 'must be 1970 or later']]);
  });

  it('takes a window starting now or in the past', () => {
    expect(maintenanceBody.safeParse({ startsAt: '2020-01-01T00:00:00Z', endsAt: '2999-01-01T00:00:00Z' }).success).toBe(true);
  });
});
