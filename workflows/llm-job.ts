/**
 * A durable completion for an agent's long task: the activity retries through provider
 * outages and worker restarts (falling back across providers inside each attempt) and bills
 * under the workflow's id, so the job is billed once.
 */
import { ApplicationFailure, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { JobOutcome } from '../activities/llm';
import type { ChatRequest } from '../lib/llm';
import { dbLocalActivity } from './activity-options';

const llm = proxyActivities<Activities>({
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 30, nonRetryableErrorTypes: ['Llm400', 'Llm402', 'Llm404', 'Llm499'] },
});
const db = proxyLocalActivities<Activities>(dbLocalActivity);
const catalog = proxyActivities<Activities>({ startToCloseTimeout: '5 minutes', retry: { maximumAttempts: 5, initialInterval: '10 seconds' } });

export interface LlmJobInput {
  jobId: string;
  userId: string;
  request: ChatRequest;
}

export async function llmJobWorkflow(input: LlmJobInput): Promise<JobOutcome> {
  try {
    return await llm.runLlmJob(input.jobId, input.userId, input.request);
  } catch (err) {
    const e = err as Error & { cause?: Error };
    const why = e.cause?.message ?? e.message;
    await db.failLlmJob(input.jobId, why);
    throw ApplicationFailure.nonRetryable(`job failed: ${why}`, 'LlmJobFailed');
  }
}

/** OpenRouter's price catalog, synced by a daily schedule. */
export async function syncModelPricesWorkflow(): Promise<number> {
  return catalog.syncModelPrices();
}
