import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { probeEngineWorkflow } from '../workflows';
import { localEngines, uniq } from './helpers';
import { maybeRecordHistory, replayOptions, temporalForTest } from './temporal-env';

describe('a workflow with an activity on the real Temporal dev server', () => {
  let t: Awaited<ReturnType<typeof temporalForTest>>;
  beforeAll(async () => {
    t = await temporalForTest('probe');
  });
  afterAll(async () => t?.close());

  it('probes every local engine over mutual TLS and the server records the activity', async () => {
    const engines = localEngines();
    const handles = await t.worker.runUntil(async () =>
      Promise.all(
        engines.map(async (endpoint) => {
          const handle = await t.client.workflow.start(probeEngineWorkflow, {
            taskQueue: t.taskQueue,
            workflowId: uniq('probe-engine'),
            args: [endpoint],
          });
          const result = await handle.result();
          expect(result.endpoint).toEqual(endpoint);
          expect(result.gvisor).toBe(true);
          expect(result.facts.cpus).toBeGreaterThan(0);
          expect(result.facts.memoryBytes).toBeGreaterThan(0);
          expect(result.facts.defaultRuntime).toBe('runsc');
          return handle;
        }),
      ),
    );

    // The server, not the test process, ran the orchestration: its history holds the activity.
    const history = await handles[0].fetchHistory();
    const types = (history.events ?? []).map((e) => temporal.api.enums.v1.EventType[e.eventType ?? 0]);
    expect(types).toEqual(
      expect.arrayContaining(['EVENT_TYPE_ACTIVITY_TASK_SCHEDULED', 'EVENT_TYPE_ACTIVITY_TASK_COMPLETED', 'EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED']),
    );
    const description = await handles[0].describe();
    expect(description.status.name).toBe('COMPLETED');
    expect(description.taskQueue).toBe(t.taskQueue);

    // The fresh history replays against today's workflow code.
    await Worker.runReplayHistory(replayOptions(), history, handles[0].workflowId);
    maybeRecordHistory('probe-engine', history);
  });
});
