import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { historyToJSON, type History } from '@temporalio/common/lib/proto-utils';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { config } from '../lib/config';
import { temporalConnectionOptions } from '../lib/temporal';
import { createWorker } from '../workers/worker';
import type { ActivityDeps } from '../activities';
import { uniq } from './helpers';

export const HISTORIES_DIR = path.join(__dirname, 'histories');
export const WORKFLOWS_PATH = path.join(__dirname, '..', 'workflows', 'index.ts');

/** Connections to the stack's Temporal dev server and a worker on a task queue of the test's own. */
export async function temporalForTest(deps: ActivityDeps, prefix = 'test') {
  const c = config();
  const opts = temporalConnectionOptions(c);
  const nativeConnection = await NativeConnection.connect(opts);
  const connection = await Connection.connect(opts);
  const client = new Client({ connection, namespace: c.TEMPORAL_NAMESPACE });
  const taskQueue = uniq(prefix);
  const worker: Worker = await createWorker({ connection: nativeConnection, namespace: c.TEMPORAL_NAMESPACE, taskQueue, deps });
  return {
    client,
    taskQueue,
    worker,
    async close() {
      await connection.close();
      await nativeConnection.close();
    },
  };
}

/** Saves a history for the replay suite when RECORD_HISTORIES=1 (run once per workflow change). */
export function maybeRecordHistory(name: string, history: History): void {
  if (process.env.RECORD_HISTORIES !== '1') return;
  fs.mkdirSync(HISTORIES_DIR, { recursive: true });
  fs.writeFileSync(path.join(HISTORIES_DIR, `${name}.json`), historyToJSON(history));
}
