// Every workflow the worker registers, re-exported by name (no `export *`: a hidden
// workflow is a workflow the worker silently lacks).
export { probeEngineWorkflow } from './probe-engine';
export { onboardServerWorkflow } from './onboard-server';
export { fleetHeartbeatWorkflow } from './fleet-heartbeat';
export { workspaceWorkflow } from './workspace';
export { migrateWorkspaceWorkflow } from './migrate-workspace';
export { drainServerWorkflow } from './drain-server';
export { backupWorkflow } from './backup';
export { restoreDatabaseWorkflow, restoreWorkspaceWorkflow } from './restore';
export { cutoverWorkflow } from './cutover';
export { llmJobWorkflow, syncModelPricesWorkflow } from './llm-job';
