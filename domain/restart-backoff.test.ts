import { DEFAULT_RESTART_POLICY, describeExit, nextRestart, type RestartPolicy } from './restart-backoff';

const policy: RestartPolicy = { initialDelayMs: 500, maxDelayMs: 30_000, factor: 2, stableAfterMs: 60_000 };

describe('nextRestart', () => {
  it('doubles the wait with each quick failure in a row, up to the cap', () => {
    let failures = 0;
    const delays: number[] = [];
    for (let i = 0; i < 9; i++) {
      const plan = nextRestart(policy, failures, 1_000);
      failures = plan.failures;
      delays.push(plan.delayMs);
    }
    expect(delays).toEqual([500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    expect(failures).toBe(9);
  });

  it('starts over after a run that stayed up long enough', () => {
    expect(nextRestart(policy, 7, 60_000)).toEqual({ failures: 1, delayMs: 500 });
    expect(nextRestart(policy, 7, 59_999)).toEqual({ failures: 8, delayMs: 30_000 });
  });

  it('never waits past the cap, however many failures', () => {
    expect(nextRestart(DEFAULT_RESTART_POLICY, 5_000, 0).delayMs).toBe(DEFAULT_RESTART_POLICY.maxDelayMs);
  });
});

describe('describeExit', () => {
  it('names the signal or the exit code', () => {
    expect(describeExit(null, 'SIGKILL')).toBe('killed by SIGKILL');
    expect(describeExit(1, null)).toBe('exited with code 1');
    expect(describeExit(0, null)).toBe('exited with code 0');
    expect(describeExit(null, null)).toBe('could not be started');
  });
});
