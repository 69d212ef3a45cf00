import fs from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { HISTORIES_DIR, HISTORY_WORKFLOW_IDS, quietRuntime, replayOptions } from './temporal-env';

// Every recorded history must replay against the current workflow code: a change that would
// break workflows already running in production fails here (record new ones with RECORD_HISTORIES=1).
// Payloads are encrypted (lib/payload-codec): histories are recorded, and decoded here, with the
// tests' fixed key (test/setup-env.ts), so they replay on any machine.
describe('replay of recorded workflow histories', () => {
  const files = fs.readdirSync(HISTORIES_DIR).filter((f) => f.endsWith('.json') && path.join(HISTORIES_DIR, f) !== HISTORY_WORKFLOW_IDS);
  const ids = JSON.parse(fs.readFileSync(HISTORY_WORKFLOW_IDS, 'utf8')) as Record<string, string>;

  it('has recorded histories to replay', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  it('replays every history without nondeterminism', async () => {
    quietRuntime();
    const histories = files.map((f) => ({
      workflowId: ids[path.basename(f, '.json')] ?? path.basename(f, '.json'),
      history: historyFromJSON(JSON.parse(fs.readFileSync(path.join(HISTORIES_DIR, f), 'utf8'))),
    }));
    const results = [];
    for await (const r of Worker.runReplayHistories(replayOptions(), histories)) results.push(r);
    expect(results.map((r) => [r.workflowId, r.error?.message])).toEqual(histories.map((h) => [h.workflowId, undefined]));
  });
});
