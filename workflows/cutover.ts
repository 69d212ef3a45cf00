/**
 * The GCP → self-hosted cutover (seed Phases 8 and 11) as one durable workflow: pre-flight
 * checklist → the operator's approval → lower TTLs → switch the DNS records → watch health
 * (48 h by default) → roll back on failures or on the operator's word, else keep the rollback
 * window (14 days) open and then hand over the decommission checklist. Every record is
 * captured before it changes; a rollback brings back exactly what was captured.
 */
import {
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  executeChild,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, CheckResult } from '../activities';
import { DEFAULT_DECOMMISSION, defaultRecords, wantedRecord, type DnsRecord, type RecordSpec } from '../domain/cutover';
import { PHASE } from '../lib/constants';
import { restoreDatabaseWorkflow } from './restore';

const checks = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', retry: { maximumAttempts: 3, initialInterval: '2 seconds' } });
const probe = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 1 } });
/** DNS changes: Cloudflare's 5xx and 429 are retried for about ten minutes; a 4xx stops at once. */
const dns = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 12, nonRetryableErrorTypes: ['CloudflareForbidden', 'CloudflareRejected'] },
});

export interface CutoverPlan {
  zoneId: string;
  /** The new platform server's public address (the A records' content). */
  targetIp: string;
  /** The records to switch; default the seed's Phase 8 table for `targetIp`. */
  records?: RecordSpec[];
  /** The new platform's health URLs: probed before the switch and during the watch. */
  healthUrls: string[];
  preflight?: { backupMaxAgeHours?: number; serverLabels?: Record<string, string> };
  autoApprove?: boolean;
  approvalTimeoutHours?: number;
  /** TTL (s) of non-proxied records while the switch is near; the old TTL is waited out before switching. */
  lowerTtlTo?: number;
  maxTtlWaitSeconds?: number;
  watch?: { hours?: number; probeEveryMinutes?: number; failuresToRollback?: number };
  rollbackWindowDays?: number;
  /** On rollback, also restore the pre-cutover database snapshot into this database. */
  restoreDatabaseTo?: string;
  decommission?: string[];
}

export interface ChecklistItem {
  item: string;
  ok: boolean;
  detail: string;
  at: string;
}

export interface Probe {
  at: string;
  ok: boolean;
  failures: string[];
}

export interface CutoverState {
  phase: string;
  zoneId: string;
  zoneName: string | null;
  checklist: ChecklistItem[];
  captured: Record<string, DnsRecord[]>;
  switched: string[];
  probes: Probe[];
  probesTotal: number;
  failuresInARow: number;
  approvedBy: string | null;
  rollbackReason: string | null;
  outcome: 'in-progress' | 'completed' | 'rolled-back' | 'failed' | 'cancelled';
  error: string | null;
  decommission: { item: string; status: 'to-do' }[];
}

export const cutoverStateQuery = defineQuery<CutoverState>('cutoverState');
export const approveSignal = defineSignal<[{ by: string }]>('approve');
export const rollbackSignal = defineSignal<[{ by: string; reason?: string }]>('rollback');

const PROBES_KEPT = 200;
const reason = (err: unknown) => {
  const e = err as Error & { cause?: Error };
  return e.cause?.message ?? e.message;
};

export async function cutoverWorkflow(plan: CutoverPlan): Promise<CutoverState> {
  const state: CutoverState = {
    phase: 'preflight',
    zoneId: plan.zoneId,
    zoneName: null,
    checklist: [],
    captured: {},
    switched: [],
    probes: [],
    probesTotal: 0,
    failuresInARow: 0,
    approvedBy: null,
    rollbackReason: null,
    outcome: 'in-progress',
    error: null,
    decommission: [],
  };
  let rollbackAsked: { by: string; reason?: string } | undefined;
  setHandler(cutoverStateQuery, () => state);
  setHandler(approveSignal, ({ by }) => {
    state.approvedBy ??= by;
  });
  setHandler(rollbackSignal, (r) => {
    rollbackAsked ??= r;
  });
  const phase = (p: string) => {
    state.phase = p;
    upsertSearchAttributes([{ key: PHASE, value: p }]);
  };
  const watch = { hours: 48, probeEveryMinutes: 5, failuresToRollback: 3, ...plan.watch };

  // --- pre-flight: every item is recorded; any failure ends the cutover with nothing changed.
  phase('preflight');
  const record = async (item: string, run: () => Promise<CheckResult>) => {
    let r: CheckResult;
    try {
      r = await run();
    } catch (err) {
      r = { ok: false, detail: reason(err) };
    }
    state.checklist.push({ item, ok: r.ok, detail: r.detail, at: new Date().toISOString() });
    return r;
  };
  await record('migrations applied', () => checks.checkMigrationsApplied());
  const backup = await record(`verified backup newer than ${plan.preflight?.backupMaxAgeHours ?? 24} h`, () => checks.checkRecentBackup(plan.preflight?.backupMaxAgeHours ?? 24));
  await record('workspace servers healthy', () => checks.checkServersHealthy(plan.preflight?.serverLabels));
  await record('new platform health URLs answer', async () => {
    const p = await probe.probeHealth(plan.healthUrls);
    return { ok: p.ok, detail: p.ok ? `${plan.healthUrls.length} URLs healthy` : p.failures.join('; ') };
  });
  await record('Cloudflare token may edit the zone', async () => {
    const z = await dns.cloudflareZoneAccess(plan.zoneId);
    state.zoneName = z.zoneName;
    return { ok: z.canEdit, detail: `zone ${z.zoneName}: token active, a TXT record was created and deleted` };
  });
  const failed = state.checklist.filter((c) => !c.ok);
  if (failed.length) return end('failed', `pre-flight failed: ${failed.map((c) => `${c.item}: ${c.detail}`).join('; ')}`);

  const zone = state.zoneName!;
  const specs = (plan.records ?? defaultRecords(plan.targetIp, zone)).map((s) => ({ spec: s, wanted: wantedRecord(s, zone) }));
  const names = [...new Set(specs.map((s) => s.wanted.name))];

  // --- the operator's approval (or the plan's auto-approval); a rollback signal now cancels.
  phase('awaiting-approval');
  if (plan.autoApprove) state.approvedBy ??= 'auto-approve';
  const decided = await condition(() => state.approvedBy !== null || rollbackAsked !== undefined, `${plan.approvalTimeoutHours ?? 72} hours`);
  if (!decided) return end('cancelled', `not approved within ${plan.approvalTimeoutHours ?? 72} h`);
  if (!state.approvedBy) return end('cancelled', `cancelled by ${rollbackAsked!.by} before anything changed`);

  // --- capture, then lower the TTLs of what is not proxied and wait the old TTLs out.
  phase('capturing');
  state.captured = await dns.captureRecords(plan.zoneId, names);
  const lowerTo = plan.lowerTtlTo ?? 60;
  const slow = Object.values(state.captured).flat().filter((r) => !r.proxied && r.ttl > lowerTo);
  if (slow.length) {
    phase('lowering-ttl');
    for (const name of new Set(slow.map((r) => r.name))) {
      await dns.setRecordsAt(plan.zoneId, name, state.captured[name].map(({ id: _id, ...r }) => ({ ...r, ttl: !r.proxied && r.ttl > lowerTo ? lowerTo : r.ttl })));
    }
    const wait = Math.min(plan.maxTtlWaitSeconds ?? 3600, Math.max(...slow.map((r) => r.ttl)));
    phase('waiting-for-ttl');
    if (await condition(() => rollbackAsked !== undefined, `${wait} seconds`)) return rollback(`asked by ${rollbackAsked!.by} before the switch`);
  }

  // --- the switch; a refusal part-way restores what was switched.
  phase('switching');
  for (const name of names) {
    try {
      await dns.setRecordsAt(plan.zoneId, name, specs.filter((s) => s.wanted.name === name).map((s) => s.wanted));
      state.switched.push(name);
    } catch (err) {
      state.error = `switching ${name} failed: ${reason(err)}`;
      return rollback(state.error, 'failed');
    }
  }

  // --- the health watch, on durable timers; a rollback signal wakes it at once.
  phase('watching');
  const watchEnd = Date.now() + watch.hours * 3_600_000;
  while (Date.now() < watchEnd) {
    if (await condition(() => rollbackAsked !== undefined, `${Math.min(watch.probeEveryMinutes * 60_000, Math.max(1, watchEnd - Date.now()))} milliseconds`)) {
      return rollback(`asked by ${rollbackAsked!.by}${rollbackAsked!.reason ? `: ${rollbackAsked!.reason}` : ''}`);
    }
    let p: { ok: boolean; failures: string[] };
    try {
      p = await probe.probeHealth(plan.healthUrls);
    } catch (err) {
      p = { ok: false, failures: [reason(err)] };
    }
    state.probes.push({ at: new Date().toISOString(), ...p });
    if (state.probes.length > PROBES_KEPT) state.probes.shift();
    state.probesTotal++;
    state.failuresInARow = p.ok ? 0 : state.failuresInARow + 1;
    if (state.failuresInARow >= watch.failuresToRollback) {
      return rollback(`${state.failuresInARow} health probes failed in a row: ${p.failures.join('; ')}`);
    }
  }

  // --- the rollback window: GCP stays available; one signal still rolls back.
  phase('rollback-window');
  if (await condition(() => rollbackAsked !== undefined, `${plan.rollbackWindowDays ?? 14} days`)) {
    return rollback(`asked by ${rollbackAsked!.by} in the rollback window${rollbackAsked!.reason ? `: ${rollbackAsked!.reason}` : ''}`);
  }
  phase('decommission');
  state.decommission = (plan.decommission ?? DEFAULT_DECOMMISSION).map((item) => ({ item, status: 'to-do' }));
  return end('completed', null);

  async function rollback(why: string, outcome: 'rolled-back' | 'failed' = 'rolled-back'): Promise<CutoverState> {
    phase('rolling-back');
    state.rollbackReason = why;
    // Every captured name goes back, switched or not: a half-applied name is restored too.
    for (const name of Object.keys(state.captured)) {
      await dns.setRecordsAt(plan.zoneId, name, state.captured[name].map(({ id: _id, ...r }) => r));
    }
    if (plan.restoreDatabaseTo && backup.data?.snapshotId) {
      phase('restoring-database');
      await executeChild(restoreDatabaseWorkflow, {
        workflowId: `${workflowInfo().workflowId}-restore-database`,
        args: [{ snapshotId: backup.data.snapshotId, targetDatabase: plan.restoreDatabaseTo }],
      });
    }
    return end(outcome, outcome === 'failed' ? `${why}; every record was restored as captured` : null);
  }

  function end(outcome: CutoverState['outcome'], error: string | null): CutoverState {
    state.outcome = outcome;
    if (error) state.error = error;
    phase(outcome);
    if (outcome === 'failed') throw ApplicationFailure.nonRetryable(error ?? 'cutover failed', 'CutoverFailed', state);
    return state;
  }
}
