/**
 * Names shared by workflows, workers and the API. No I/O here: workflow code imports it.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Search attributes operators filter on in the Temporal UI (registered by the stack and the worker). */
export const SERVER_ID = defineSearchAttributeKey('PodexServerId', SearchAttributeType.KEYWORD);
export const WORKSPACE_ID = defineSearchAttributeKey('PodexWorkspaceId', SearchAttributeType.KEYWORD);
export const PHASE = defineSearchAttributeKey('PodexPhase', SearchAttributeType.KEYWORD);

export const SEARCH_ATTRIBUTES = [SERVER_ID, WORKSPACE_ID, PHASE] as const;

/** Workflow id prefixes: ids derive from the entity they act on, so a repeated request is the same workflow. */
export const WORKFLOW_ID = {
  probeEngine: (host: string, port: number) => `probe-engine-${host}-${port}`,
  onboardServer: (serverId: string) => `onboard-server-${serverId}`,
  workspace: (workspaceId: string) => `workspace-${workspaceId}`,
  migrateWorkspace: (workspaceId: string) => `migrate-workspace-${workspaceId}`,
  drainServer: (serverId: string) => `drain-server-${serverId}`,
} as const;

/** Redis channel on which every change of a workspace's route is announced (the message is its id). */
export const ROUTES_CHANNEL = 'podex:routes:changed';
