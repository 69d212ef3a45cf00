import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { WebSocket } from 'ws';
import { mintToken } from '../api/auth';
import { config } from '../lib/config';
import { eventually, registerEngines, startHarness, type Harness } from './harness';
import { uniq } from './helpers';

/** Exec and terminals in one real gVisor workspace, through the real API. */
describe('exec and terminal in a workspace', () => {
  let h: Harness;
  const suite = uniq('shell');
  const servers: string[] = [];
  let id = '';
  let other = '';
  const logs = new PassThrough();
  let logText = '';
  logs.on('data', (d: Buffer) => (logText += d.toString()));
  const secret = `sekrit-${randomBytes(8).toString('hex')}`;

  beforeAll(async () => {
    h = await startHarness('shell', {}, { overrides: { logger: pino({ level: 'debug' }, logs) } });
    other = await mintToken(config().JWT_SECRET_KEY, 'other-user', 'user');
    servers.push(...(await registerEngines(h, 'shsrv', [0], { suite })));
    const res = await h.call('POST', '/workspaces?wait=true', { token: h.userToken, body: { name: 'shell', tier: 'free', constraints: { labels: { suite } } } });
    id = res.body?.workspace?.id ?? '';
    expect(res.status).toBe(201);
  }, 180_000);

  afterAll(async () => {
    if (!h) return;
    try {
      if (id) {
        const w = await h.deps.prisma.workspace.findUnique({ where: { id } });
        if (w && w.status !== 'deleted' && w.status !== 'failed') await h.call('DELETE', `/workspaces/${id}`);
        await h.deps.prisma.auditLog.deleteMany({ where: { targetType: 'workspace', targetId: id } });
        await h.deps.prisma.workspace.deleteMany({ where: { id } });
      }
      await h.deps.prisma.workspaceServer.deleteMany({ where: { id: { in: servers } } });
    } finally {
      await h.close();
    }
  });

  const exec = (body: unknown, opts: { token?: string; accept?: string; signal?: AbortSignal } = {}) =>
    fetch(`${h.url}/workspaces/${id}/exec`, {
      method: 'POST',
      headers: { authorization: `Bearer ${opts.token ?? h.userToken}`, 'content-type': 'application/json', ...(opts.accept ? { accept: opts.accept } : {}) },
      body: JSON.stringify(body),
      signal: opts.signal,
    });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const execJson = async (body: unknown, token?: string): Promise<{ status: number; body: any }> => {
    const res = await exec(body, { token, accept: 'application/json' });
    return { status: res.status, body: await res.json() };
  };
  /** Live processes (zombies aside) whose command line matches. */
  const running = async (pattern: RegExp) => {
    const r = await execJson({ cmd: ['ps', '-o', 'stat,args'] });
    expect(r.body.exitCode).toBe(0);
    return (r.body.stdout as string).split('\n').filter((l) => !/^\s*Z/.test(l) && pattern.test(l));
  };
  const wsUrl = (path: string) => `${h.url.replace(/^http/, 'ws')}${path}`;
  /** The status of a terminal request that is refused before the upgrade (101 if it is not). */
  const upgradeStatus = (path: string, opts: { headers?: Record<string, string>; protocols?: string[] } = {}) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const sock = new WebSocket(wsUrl(path), opts.protocols ?? [], { headers: opts.headers });
      sock.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      sock.on('open', () => {
        sock.close();
        resolve({ status: 101, body: '' });
      });
      sock.on('error', reject);
    });

  it('streams output as ndjson by default, ending with the exit code', async () => {
    const res = await exec({ cmd: ['sh', '-c', 'echo hi; echo oops >&2; exit 3'] });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
    const last = lines.pop();
    expect(last).toMatchObject({ exitCode: 3, truncated: false, timedOut: false });
    expect(typeof last.durationMs).toBe('number');
    expect(lines.filter((l) => l.stream === 'stdout').map((l) => l.data).join('')).toBe('hi\n');
    expect(lines.filter((l) => l.stream === 'stderr').map((l) => l.data).join('')).toBe('oops\n');
  });

  it('answers one JSON object when asked for application/json; env and workdir apply', async () => {
    const r = await execJson({ cmd: ['sh', '-c', 'echo hi; exit 3'] });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ stdout: 'hi\n', stderr: '', exitCode: 3, truncated: false, timedOut: false });
    const env = await execJson({ cmd: ['sh', '-c', 'echo podex-$((6*7)) $PODEX_TEST_SECRET; pwd'], env: { PODEX_TEST_SECRET: secret }, workdir: '/tmp' });
    expect(env.body).toMatchObject({ stdout: `podex-42 ${secret}\n/tmp\n`, exitCode: 0 });
  });

  it('kills the command and all it started on timeout', async () => {
    const t0 = Date.now();
    const r = await execJson({ cmd: ['sh', '-c', 'sleep 31 & sleep 30'], timeoutSeconds: 1 });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ timedOut: true, exitCode: null });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(await running(/sleep 3[01]/)).toEqual([]);
  });

  it('kills the command when the client goes away', async () => {
    const ac = new AbortController();
    const res = await exec({ cmd: ['sh', '-c', 'echo started; sleep 33'] }, { signal: ac.signal });
    const reader = res.body!.getReader();
    let seen = '';
    while (!seen.includes('started')) seen += Buffer.from((await reader.read()).value!).toString();
    expect((await running(/sleep 33/)).length).toBeGreaterThan(0);
    ac.abort();
    await eventually(async () => (await running(/sleep 33/)).length === 0, 15_000, 300);
  });

  it('drops output beyond maxOutputBytes and says so', async () => {
    const r = await execJson({ cmd: ['sh', '-c', "head -c 100000 /dev/zero | tr '\\0' a; echo tail >&2"], maxOutputBytes: 1000 });
    expect(r.body).toMatchObject({ truncated: true, exitCode: 0, timedOut: false });
    expect(r.body.stdout.length + r.body.stderr.length).toBe(1000);
  });

  it('refuses bad input with a 400 naming the field', async () => {
    const cases: [unknown, RegExp][] = [
      [{ cmd: [] }, /cmd/],
      [{ cmd: [''] }, /cmd\.0/],
      [{ cmd: ['true'], timeoutSeconds: 0 }, /timeoutSeconds/],
      [{ cmd: ['true'], timeoutSeconds: 99999 }, /timeoutSeconds/],
      [{ cmd: ['true'], maxOutputBytes: 17 * 1024 * 1024 }, /maxOutputBytes/],
      [{ cmd: ['true'], env: { '1BAD': 'x' } }, /env\.1BAD/],
      [{ cmd: ['true'], workdir: 'relative' }, /workdir/],
      [{ cmd: ['x'.repeat(8193)] }, /cmd\.0/],
    ];
    for (const [body, field] of cases) {
      const r = await execJson(body);
      expect(r.status).toBe(400);
      expect(r.body.message).toMatch(field);
    }
    expect((await upgradeStatus(`/workspaces/${id}/terminal?cols=0`, { headers: { authorization: `Bearer ${h.userToken}` } })).body).toMatch(/cols/);
  });

  it('another user gets 404 on exec and terminal; no credentials get 401', async () => {
    expect((await execJson({ cmd: ['true'] }, other)).status).toBe(404);
    expect((await upgradeStatus(`/workspaces/${id}/terminal`, { headers: { authorization: `Bearer ${other}` } })).status).toBe(404);
    expect((await upgradeStatus(`/workspaces/${id}/terminal`, { protocols: [`bearer.${other}`] })).status).toBe(404);
    expect((await upgradeStatus(`/workspaces/${id}/terminal`)).status).toBe(401);
    expect((await upgradeStatus(`/workspaces/${id}/terminal`, { protocols: ['bearer.not-a-jwt'] })).status).toBe(401);
  });

  it('a terminal echoes keystrokes, resizes, reports the exit and closes with 1000', async () => {
    const sock = new WebSocket(wsUrl(`/workspaces/${id}/terminal?cols=80&rows=24`), ['podex.terminal', `bearer.${h.userToken}`]);
    let out = '';
    const texts: unknown[] = [];
    sock.on('message', (d: Buffer, binary: boolean) => (binary ? (out += d.toString()) : texts.push(JSON.parse(d.toString()))));
    await once(sock, 'open');
    try {
      expect(sock.protocol).toBe('podex.terminal');
      sock.send(Buffer.from('echo podex-$((40+2))\r'));
      await eventually(async () => out.includes('podex-42'), 20_000, 50);
      // The shell's line editor asks for the cursor position (ESC[6n) and, when the answer is late, redraws what
      // was typed with erase sequences in between (seen on a fresh machine: "ech ESC[J o podex-…"); the echo is
      // what is left once the control sequences are taken out.
      // eslint-disable-next-line no-control-regex -- the escape character is what the pattern is about
      expect(out.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')).toContain('echo podex-$((40+2))');
      sock.send(JSON.stringify({ type: 'resize', cols: 120, rows: 50 }));
      await eventually(async () => {
        sock.send(JSON.stringify({ type: 'input', data: 'stty size\r' }));
        await new Promise((r) => setTimeout(r, 300));
        return out.includes('50 120');
      }, 10_000, 0);
      sock.send(JSON.stringify({ type: 'bogus' }));
      const closed = once(sock, 'close');
      sock.send(Buffer.from('exit 7\r'));
      const [code] = (await closed) as [number];
      expect(code).toBe(1000);
      expect(texts).toContainEqual({ type: 'exit', exitCode: 7 });
      expect(texts).toContainEqual(expect.objectContaining({ type: 'error' }));
    } finally {
      // A failure above must not leave the terminal open: the audit test waits for every terminal to close.
      sock.terminate();
    }
  });

  it('a terminal the client closes takes its processes with it (Authorization header, ?cmd=)', async () => {
    const sock = new WebSocket(wsUrl(`/workspaces/${id}/terminal?cmd=/bin/sh&cmd=-i`), { headers: { authorization: `Bearer ${h.userToken}` } });
    let out = '';
    sock.on('message', (d: Buffer) => (out += d.toString()));
    await once(sock, 'open');
    sock.send(Buffer.from('sleep 34; echo done-$((1+1))\r'));
    await eventually(async () => (await running(/sleep 34/)).length > 0, 10_000, 200);
    sock.close();
    await eventually(async () => (await running(/sleep 34/)).length === 0, 15_000, 300);
    expect(out).not.toContain('done-2');
  });

  it('audits every use without output or variable values', async () => {
    const rows = await eventually(async () => {
      const all = await h.deps.prisma.auditLog.findMany({ where: { targetType: 'workspace', targetId: id, action: { in: ['workspace.exec', 'workspace.terminal'] } }, orderBy: { id: 'asc' } });
      // The last terminal's entry is completed once its processes are killed.
      return all.filter((r) => r.action === 'workspace.terminal').every((r) => (r.after as { closed: boolean }).closed) ? all : undefined;
    });
    const after: Record<string, unknown>[] = rows.map((r) => ({ actor: r.actor, action: r.action, ...(r.after as Record<string, unknown>) }));
    expect(after).toContainEqual(expect.objectContaining({ actor: 'test-user', action: 'workspace.exec', cmd: ['sh', '-c', 'echo hi; exit 3'], exitCode: 3, timedOut: false, envNames: [], workdir: null }));
    expect(after).toContainEqual(expect.objectContaining({ action: 'workspace.exec', envNames: ['PODEX_TEST_SECRET'], workdir: '/tmp', exitCode: 0 }));
    expect(after).toContainEqual(expect.objectContaining({ action: 'workspace.exec', cmd: ['sh', '-c', 'sleep 31 & sleep 30'], timedOut: true, exitCode: null }));
    expect(after).toContainEqual(expect.objectContaining({ action: 'workspace.exec', cmd: ['sh', '-c', 'echo started; sleep 33'], aborted: true }));
    const terminals = after.filter((a) => a.action === 'workspace.terminal');
    expect(terminals).toHaveLength(2);
    expect(terminals[0]).toMatchObject({ cmd: ['/bin/sh'], closedBy: 'exit', exitCode: 7 });
    expect(terminals[1]).toMatchObject({ cmd: ['/bin/sh', '-i'], closedBy: 'client' });
    for (const t of terminals) expect(t.durationMs).toEqual(expect.any(Number));
    // Refused requests (400, 401, 404) are not uses.
    expect(rows.every((r) => r.actor === 'test-user')).toBe(true);
    const text = JSON.stringify(after);
    for (const leak of [secret, 'podex-42', 'aaaaaaaa', '50 120']) {
      expect(text).not.toContain(leak);
      expect(logText).not.toContain(leak);
    }
    expect(logText).toContain('exec finished');
  });

  it('a stopped workspace gets 409 on exec and terminal', async () => {
    expect((await h.call('POST', `/workspaces/${id}/stop`, { token: h.userToken })).body.status).toBe('stopped');
    const r = await execJson({ cmd: ['true'] });
    expect(r.status).toBe(409);
    expect(r.body.message).toMatch(/stopped.*running/);
    const t = await upgradeStatus(`/workspaces/${id}/terminal`, { protocols: ['podex.terminal', `bearer.${h.userToken}`] });
    expect(t.status).toBe(409);
    expect(JSON.parse(t.body).message).toMatch(/stopped/);
  });
});
