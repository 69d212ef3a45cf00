/**
 * Activity option presets, named by what the activities talk to. Every preset bounds its
 * retries: the SDK's default retries forever.
 */
import type { ActivityOptions } from '@temporalio/workflow';

export const dockerActivity: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5 },
};

export const dbActivity: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 10 },
};
