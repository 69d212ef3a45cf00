import { randomBytes } from 'node:crypto';
import { temporal } from '@temporalio/proto';
import { startHarness, type Harness } from './harness';
import { uniq } from './helpers';

/** Users' prompts travel through workflows: Temporal must store them encrypted, and only admins may read them back. */
describe('Temporal payloads are encrypted; the codec endpoint is for admins', () => {
  let h: Harness;
  const secret = `prompt-${randomBytes(8).toString('hex')}`;
  let workflowId: string;
  let payloads: { metadata: Record<string, string>; data: string }[];

  beforeAll(async () => {
    // No worker: the workflow's start is enough to put its input in the history.
    h = await startHarness('codec', {}, { inProcessWorker: false });
    workflowId = uniq('codec-llm-job');
    await h.client.workflow.start('llmJobWorkflow', {
      taskQueue: h.taskQueue,
      workflowId,
      args: [{ jobId: uniq('job'), userId: 'test-user', request: { model: 'some/model', messages: [{ role: 'user', content: secret }] } }],
    });
  });
  afterAll(async () => h?.close());

  it('the history as Temporal stores it does not hold the prompt', async () => {
    const raw = await h.client.workflowService.getWorkflowExecutionHistory({ namespace: h.client.options.namespace, execution: { workflowId } });
    const bytes = Buffer.from(temporal.api.workflowservice.v1.GetWorkflowExecutionHistoryResponse.encode(raw).finish());
    expect(bytes.includes(secret)).toBe(false);
    const input = raw.history!.events![0].workflowExecutionStartedEventAttributes!.input!.payloads!;
    expect(Buffer.from(input[0].metadata!.encoding!).toString()).toBe('binary/encrypted');
    payloads = input.map((p) => ({
      metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      data: Buffer.from(p.data!).toString('base64'),
    }));
    // The SDK's own client, holding the keys, still reads it.
    const described = await h.client.workflow.getHandle(workflowId).fetchHistory();
    expect(JSON.stringify(described)).not.toContain(secret);
  });

  it('POST /codec/decode shows an admin the payload; a user is refused (403), nobody else (401)', async () => {
    const res = await h.call('POST', '/codec/decode', { body: { payloads } });
    expect(res.status).toBe(200);
    const decoded = Buffer.from(res.body.payloads[0].data, 'base64').toString();
    expect(decoded).toContain(secret);
    expect(Buffer.from(res.body.payloads[0].metadata.encoding, 'base64').toString()).toBe('json/plain');
    expect((await h.call('POST', '/codec/decode', { token: h.userToken, body: { payloads } })).status).toBe(403);
    expect((await h.call('POST', '/codec/encode', { token: h.userToken, body: { payloads } })).status).toBe(403);
    expect((await h.call('POST', '/codec/decode', { token: null, body: { payloads } })).status).toBe(401);
    // Encode and decode are inverse.
    const again = await h.call('POST', '/codec/encode', { body: { payloads: res.body.payloads } });
    expect(Buffer.from(again.body.payloads[0].metadata.encoding, 'base64').toString()).toBe('binary/encrypted');
    expect((await h.call('POST', '/codec/decode', { body: again.body })).body).toEqual(res.body);
  });

  it('bad input is a 400 naming the field; a payload no key opens is a 422', async () => {
    const bad = await h.call('POST', '/codec/decode', { body: { payloads: 'x' } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('payloads');
    const forged = { metadata: { ...payloads[0].metadata, 'encryption-key-id': Buffer.from('nobody').toString('base64') }, data: payloads[0].data };
    const res = await h.call('POST', '/codec/decode', { body: { payloads: [forged] } });
    expect(res.status).toBe(422);
    expect(JSON.stringify(res.body)).not.toContain('nobody');
  });

  it('answers the Temporal UI’s preflight from its origin only', async () => {
    const ui = new URL(process.env.TEMPORAL_UI_URL ?? 'http://127.0.0.1:8233').origin;
    const pre = (origin: string) =>
      fetch(`${h.url}/codec/decode`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace' } });
    const ok = await pre(ui);
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(ui);
    expect(ok.headers.get('access-control-allow-headers')).toMatch(/X-Namespace/i);
    const other = await pre('https://evil.example');
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});
