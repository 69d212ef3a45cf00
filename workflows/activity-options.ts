/**
 * Activity option presets, named by what the activities talk to. Every preset bounds its
 * retries: the SDK's default retries forever.
 */
import type { ActivityOptions, LocalActivityOptions } from '@temporalio/workflow';

const NON_RETRYABLE = ['ServerNotFoundError', 'ImageUnavailable', 'NoCapacity', 'WorkspaceNotFound', 'ImageNotFound'];

export const dockerActivity: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
};

/** Onboarding gives up sooner: an operator is waiting to hear whether the server is reachable. */
export const onboardingDockerActivity: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
};

const DB_RETRY = { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE } as const;

export const dbActivity: ActivityOptions = { startToCloseTimeout: '30 seconds', retry: DB_RETRY };

/**
 * The short database steps on a workspace's hot path (read the record, reserve capacity,
 * record status) run as local activities: in the worker, within the workflow task, without
 * a round trip through the Temporal server per step. They are recorded in the history as
 * markers, so a replay does not run them again.
 */
export const dbLocalActivity: LocalActivityOptions = { startToCloseTimeout: '30 seconds', retry: DB_RETRY };

/** A heartbeat answers within its own timeout or counts as a miss; the next run is the retry. */
export const heartbeatActivity: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 2, initialInterval: '1 second' },
};

/**
 * The quick Docker steps of a workspace (create network, volume, container; stop; remove).
 * A short timeout bounds how long a step lost with a crashed worker waits before its retry.
 */
export const workspaceDockerActivity: ActivityOptions = {
  startToCloseTimeout: '20 seconds',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 6, nonRetryableErrorTypes: NON_RETRYABLE },
};

/** Starting a container waits for its health check: allow a minute, with heartbeats. */
export const readinessActivity: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
};
