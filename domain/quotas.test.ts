import { effectiveLimits, PLANS, refusal, usageOf } from './quotas';

const none = usageOf([]);

describe('plans, overrides and the check a new workspace passes', () => {
  it('applies an admin’s overrides over the plan, field by field', () => {
    expect(effectiveLimits('free', null)).toEqual({ plan: 'free', limits: PLANS.free });
    const { plan, limits } = effectiveLimits('free', { plan: 'pro', maxWorkspaces: 9 });
    expect(plan).toBe('pro');
    expect(limits).toEqual({ ...PLANS.pro, maxWorkspaces: 9 });
  });

  it('counts live workspaces by their tiers and GPUs', () => {
    expect(usageOf([{ tier: 'free', constraints: null }, { tier: 'pro', constraints: { gpu: { count: 2 } } }])).toEqual({ workspaces: 2, cpu: 3, memoryMb: 5120, diskGb: 25, gpus: 2 });
  });

  it('refuses a tier, a GPU or a server pin the plan does not include, naming the field', () => {
    expect(refusal(PLANS.free, 'free', none, { tier: 'power', gpus: 0, pinned: false })).toMatchObject({ kind: 'entitlement', field: 'tier' });
    expect(refusal(PLANS.pro, 'pro', none, { tier: 'pro', gpus: 1, pinned: false })).toMatchObject({ kind: 'entitlement', field: 'constraints.gpu' });
    expect(refusal(PLANS.team, 'team', none, { tier: 'free', gpus: 0, pinned: true })).toMatchObject({ kind: 'entitlement', field: 'server' });
    expect(refusal({ ...PLANS.team, serverChoice: true }, 'team', none, { tier: 'free', gpus: 0, pinned: true })).toBeNull();
  });

  it('refuses past each limit, naming it', () => {
    const two = usageOf([{ tier: 'free', constraints: null }, { tier: 'free', constraints: null }]);
    expect(refusal(PLANS.free, 'free', two, { tier: 'free', gpus: 0, pinned: false })).toMatchObject({ kind: 'quota', limit: 'maxWorkspaces', max: 2, used: 2 });
    const one = usageOf([{ tier: 'pro', constraints: null }]);
    expect(refusal({ ...PLANS.pro, maxCpu: 3 }, 'pro', one, { tier: 'pro', gpus: 0, pinned: false })).toMatchObject({ limit: 'maxCpu', max: 3, used: 2, asked: 2 });
    expect(refusal({ ...PLANS.pro, maxMemoryMb: 5000 }, 'pro', one, { tier: 'free', gpus: 0, pinned: false })).toMatchObject({ limit: 'maxMemoryMb' });
    expect(refusal({ ...PLANS.pro, maxDiskGb: 30 }, 'pro', one, { tier: 'pro', gpus: 0, pinned: false })).toMatchObject({ limit: 'maxDiskGb' });
    expect(refusal({ ...PLANS.team, maxGpus: 2 }, 'team', usageOf([{ tier: 'free', constraints: { gpu: { count: 2 } } }]), { tier: 'free', gpus: 1, pinned: false })).toMatchObject({ limit: 'maxGpus' });
    expect(refusal(PLANS.pro, 'pro', one, { tier: 'pro', gpus: 0, pinned: false })).toBeNull();
  });
});
