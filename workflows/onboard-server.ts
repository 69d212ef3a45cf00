import {
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { PHASE } from '../lib/constants';
import { dbActivity, onboardingDockerActivity } from './activity-options';
import { waitOutMaintenance } from './maintenance';

const docker = proxyActivities<Activities>(onboardingDockerActivity);
const db = proxyActivities<Activities>(dbActivity);

export interface OnboardServerInput {
  serverId: string;
  image: string;
  /** In strict mode any failed hardening check keeps the server out of service. */
  strict: boolean;
}

export interface OnboardingProgress {
  phase: string;
  waitingForMaintenanceUntil: string | null;
  findings?: { check: string; ok: boolean; detail: string }[];
  error?: string;
}

export const onboardingProgressQuery = defineQuery<OnboardingProgress>('onboardingProgress');

/** Onboards a workspace server: mutual-TLS reach, capacity, daemon audit, workspace image, then `active` (or `error`). */
export async function onboardServerWorkflow(input: OnboardServerInput): Promise<{ status: 'active' | 'error'; reason?: string }> {
  const progress: OnboardingProgress = { phase: 'starting', waitingForMaintenanceUntil: null };
  setHandler(onboardingProgressQuery, () => progress);
  const phase = (p: string) => {
    progress.phase = p;
    upsertSearchAttributes([{ key: PHASE, value: p }]);
  };

  try {
    const endpoint = await db.getServerEndpoint(input.serverId);
    await waitOutMaintenance(input.serverId, (until) => {
      progress.waitingForMaintenanceUntil = until;
      if (until) phase('waiting-for-maintenance');
    });
    phase('connecting');
    const facts = await docker.describeEngine(endpoint);
    if (!facts.runtimes.includes('runsc')) {
      throw ApplicationFailure.nonRetryable(`the engine has no runsc runtime (runtimes: ${facts.runtimes.join(', ')})`, 'RuntimeMissing');
    }
    phase('ensuring-image');
    await docker.ensureImage(endpoint, input.image);
    phase('auditing');
    const audit = await docker.auditDaemon(endpoint, input.image, `podex-audit-${workflowInfo().workflowId}`);
    progress.findings = audit.findings.map(({ check, ok, detail }) => ({ check, ok, detail }));
    phase('recording');
    const result = await db.recordOnboarding(input.serverId, facts, audit, input.strict);
    phase(result.status === 'active' ? 'active' : 'rejected');
    return result;
  } catch (err) {
    const message = err instanceof ApplicationFailure || err instanceof Error ? (err.cause as Error | undefined)?.message ?? err.message : String(err);
    progress.error = message;
    await CancellationScope.nonCancellable(() => db.markServerError(input.serverId, message));
    phase('failed');
    throw err;
  }
}
