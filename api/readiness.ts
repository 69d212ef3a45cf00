import { ttlMemo } from '../lib/ttl-memo';
import { within } from '../lib/timeout';
import type { Logger } from '../lib/logger';

export type CheckResult = { ok: true } | { ok: false; error: 'unavailable' };
export interface Readiness {
  ready: boolean;
  checks: Record<string, CheckResult>;
}

const CHECK_TIMEOUT_MS = 2_000;

/**
 * Readiness of the API's dependencies, asked at most once per `ttlMs` whatever the number of
 * probes: concurrent callers share the check in flight, later ones the last answer. A probe
 * (or a flood of them) therefore costs the database, Redis and Temporal one query per window.
 */
export function cachedReadiness(checks: Record<string, () => Promise<unknown>>, ttlMs: number, log: Logger): () => Promise<Readiness> {
  const run = async (): Promise<Readiness> => {
    const results = await Promise.all(
      Object.entries(checks).map(async ([name, check]): Promise<[string, CheckResult]> => {
        try {
          await within(check(), CHECK_TIMEOUT_MS, name);
          return [name, { ok: true }];
        } catch (err) {
          log.warn({ check: name, err: (err as Error).message }, 'readiness check failed');
          return [name, { ok: false, error: 'unavailable' }];
        }
      }),
    );
    return { ready: results.every(([, r]) => r.ok), checks: Object.fromEntries(results) };
  };
  const memo = ttlMemo(ttlMs, run);
  return () => memo.get();
}
