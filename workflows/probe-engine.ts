import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { EngineEndpoint } from '../lib/docker-fleet';
import { dockerActivity } from './activity-options';

const { describeEngine } = proxyActivities<Activities>(dockerActivity);

/** Reaches one Docker engine over mutual TLS and reports what it is: the first step of onboarding. */
export async function probeEngineWorkflow(endpoint: EngineEndpoint) {
  const facts = await describeEngine(endpoint);
  return { endpoint, facts, gvisor: facts.runtimes.includes('runsc') };
}
