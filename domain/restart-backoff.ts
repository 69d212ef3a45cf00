/**
 * When a supervised process (npm start's worker or API) is started again after it stops: at once
 * would spin on a fault that lasts (Temporal down, a port taken), so each quick failure doubles
 * the wait up to a cap; a run that stayed up a while proves the fault passed and starts over.
 */
export interface RestartPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  factor: number;
  /** A run at least this long counts as healthy: the next failure waits initialDelayMs again. */
  stableAfterMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { initialDelayMs: 500, maxDelayMs: 30_000, factor: 2, stableAfterMs: 60_000 };

export interface RestartPlan {
  /** Failures in a row, this one included, without a healthy run between them. */
  failures: number;
  delayMs: number;
}

/** The wait before the next start of a process that ran `uptimeMs` and had `failures` quick failures before. */
export function nextRestart(policy: RestartPolicy, failures: number, uptimeMs: number): RestartPlan {
  const inRow = uptimeMs >= policy.stableAfterMs ? 1 : failures + 1;
  return { failures: inRow, delayMs: Math.round(Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** (inRow - 1))) };
}

/** Why a process stopped, for the log line that announces its restart. */
export function describeExit(code: number | null, signal: string | null): string {
  if (signal) return `killed by ${signal}`;
  if (code === 0) return 'exited with code 0';
  if (code === null) return 'could not be started';
  return `exited with code ${code}`;
}
