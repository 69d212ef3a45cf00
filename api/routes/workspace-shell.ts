/**
 * Commands and terminals inside a workspace, for the Podex agent and the web IDE: a Docker
 * exec in the workspace's container, over the fleet's mutual-TLS connection to its server.
 * Every use is audited (the command, the variables' names, the outcome); output and
 * variable values never reach the audit log or the logs.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Router } from 'express';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Container } from 'dockerode';
import { workspaceNames } from '../../domain/container-spec';
import { openTerminal, streamExec } from '../../lib/docker-exec';
import { serverEndpoint } from '../../lib/docker-fleet';
import type { ApiDeps, UpgradeRoute } from '../app';
import { bearerVerifier, principal, type Principal } from '../auth';
import { conflict, HttpError, notFound, parse, rawErrorAnswer, route } from '../errors';
import { execBody, terminalQuery, uuidParam } from '../schemas';

const TERMINAL_PATH = /^\/workspaces\/([^/]+)\/terminal$/;
/** The subprotocol a terminal client offers; browsers send their token beside it as `bearer.<jwt>`. */
export const TERMINAL_PROTOCOL = 'podex.terminal';
const BEARER_PROTOCOL = 'bearer.';
const MAX_FRAME_BYTES = 1024 * 1024;
const PING_EVERY_MS = 30_000;
/** Output waits while this much is queued for a slow client. */
const HIGH_WATER_BYTES = 1024 * 1024;

/** Docker's answer for a container that is gone or stopped is the workspace's state, not a server fault. */
function dockerError(err: unknown): Error {
  const code = (err as { statusCode?: number }).statusCode;
  if (code === 404 || code === 409) return conflict('the workspace’s container is not running');
  if (code === undefined) return new HttpError(502, 'engine_unavailable', 'the workspace’s server did not answer');
  return err as Error;
}

/** `POST /workspaces/:id/exec` and the `GET /workspaces/:id/terminal` WebSocket. */
export function workspaceShell(deps: ApiDeps): { router: Router; upgrade: UpgradeRoute } {
  const { prisma, fleet } = deps;
  const log = deps.logger.child({ component: 'workspace-shell' });
  const verify = bearerVerifier(deps.settings.jwtSecret);

  /** The container of a running workspace the caller may use: 404 as for any other workspace read, 409 unless running. */
  async function runningContainer(p: Principal, id: string): Promise<Container> {
    const w = await prisma.workspace.findUnique({ where: { id }, select: { ownerId: true, status: true, serverId: true } });
    if (!w || (p.role !== 'admin' && w.ownerId !== p.id)) throw notFound('workspace');
    if (w.status !== 'running' || !w.serverId) throw conflict(`the workspace is ${w.status}: it must be running (start it first)`);
    const server = await prisma.workspaceServer.findUnique({ where: { id: w.serverId }, select: { ipAddress: true, dockerPort: true } });
    if (!server) throw conflict('the workspace has no server');
    return fleet.engine(serverEndpoint(server)).getContainer(workspaceNames(id).container);
  }

  async function finishAudit(auditId: bigint, after: object): Promise<void> {
    await prisma.auditLog.update({ where: { id: auditId }, data: { after } }).catch((err: Error) => log.warn({ auditId: auditId.toString(), err: err.message }, 'audit entry not completed'));
  }

  const router = Router();
  router.post(
    '/workspaces/:id/exec',
    route(async (req, res) => {
      const { id } = parse(uuidParam, req.params, 'params');
      const body = parse(execBody, req.body ?? {});
      const p = principal(res);
      const container = await runningContainer(p, id);
      const asJson = req.accepts(['application/x-ndjson', 'application/json']) === 'application/json';
      const audited = { cmd: body.cmd, workdir: body.workdir ?? null, envNames: Object.keys(body.env ?? {}) };
      const audit = await prisma.auditLog.create({ data: { actor: p.id, action: 'workspace.exec', targetType: 'workspace', targetId: id, after: { ...audited, exitCode: null, timedOut: false, finished: false } } });

      const ac = new AbortController();
      // The caller went away before the answer was complete: the command must not run on.
      res.on('close', () => {
        if (!res.writableFinished) ac.abort();
      });
      const out = { stdout: [] as string[], stderr: [] as string[] };
      const line = (o: object) => res.write(`${JSON.stringify(o)}\n`);
      let result;
      try {
        result = await streamExec(
          container,
          {
            cmd: body.cmd,
            env: body.env,
            workdir: body.workdir,
            timeoutMs: body.timeoutSeconds * 1000,
            maxOutputBytes: body.maxOutputBytes,
            signal: ac.signal,
            onStarted: () => {
              if (!asJson) res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
            },
          },
          (stream, data) => (asJson ? out[stream].push(data) : line({ stream, data })),
        );
      } catch (err) {
        await finishAudit(audit.id, { ...audited, exitCode: null, timedOut: false, finished: false, error: 'not started' });
        if (res.headersSent) {
          line({ error: 'exec failed' });
          res.end();
          return;
        }
        throw dockerError(err);
      }
      const { aborted, ...outcome } = result;
      await finishAudit(audit.id, { ...audited, ...outcome, finished: true, ...(aborted ? { aborted: true } : {}) });
      log.info({ workspaceId: id, actor: p.id, exitCode: outcome.exitCode, timedOut: outcome.timedOut, truncated: outcome.truncated, aborted, durationMs: outcome.durationMs }, 'exec finished');
      if (aborted) return;
      if (asJson) res.json({ stdout: out.stdout.join(''), stderr: out.stderr.join(''), ...outcome });
      else {
        line(outcome);
        res.end();
      }
    }),
  );

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_FRAME_BYTES,
    // Browsers fail a handshake whose answer names none of the protocols they offered.
    handleProtocols: (offered) => (offered.has(TERMINAL_PROTOCOL) ? TERMINAL_PROTOCOL : ([...offered].find((x) => x.startsWith(BEARER_PROTOCOL)) ?? false)),
  });

  function refuse(socket: Duplex, status: number, error: string, message: string): void {
    socket.end(rawErrorAnswer(status, error, message, status === 401 ? { 'www-authenticate': 'Bearer realm="podex"' } : {}));
  }

  /** Checks everything a plain HTTP answer can still refuse, then upgrades and bridges the socket to a TTY exec. */
  async function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => undefined);
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const { id } = parse(uuidParam, { id: TERMINAL_PATH.exec(url.pathname)?.[1] }, 'params');
      const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((x) => x.trim());
      const token = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? offered.find((x) => x.startsWith(BEARER_PROTOCOL))?.slice(BEARER_PROTOCOL.length);
      const p = token ? await verify(token) : null;
      if (!p) throw new HttpError(401, 'unauthorized', token ? 'invalid or expired token' : `missing credentials: send a Bearer token or the subprotocol ${BEARER_PROTOCOL}<token>`);
      const query: Record<string, string | string[]> = {};
      for (const k of new Set(url.searchParams.keys())) {
        const all = url.searchParams.getAll(k);
        query[k] = all.length > 1 ? all : all[0];
      }
      const q = parse(terminalQuery, query, 'query');
      const container = await runningContainer(p, id);
      const cmd = q.cmd === undefined ? ['/bin/sh'] : Array.isArray(q.cmd) ? q.cmd : [q.cmd];
      const term = await openTerminal(container, { cmd, cols: q.cols, rows: q.rows }).catch((err) => {
        throw dockerError(err);
      });
      wss.handleUpgrade(req, socket, head, (ws) => void bridge(ws, term, { id, actor: p.id, cmd }));
    } catch (err) {
      if (err instanceof HttpError) return refuse(socket, err.status, err.code, err.message);
      log.error({ err: (err as Error).message }, 'terminal refused');
      refuse(socket, 500, 'internal', 'internal error');
    }
  }

  async function bridge(ws: WebSocket, term: Awaited<ReturnType<typeof openTerminal>>, s: { id: string; actor: string; cmd: string[] }): Promise<void> {
    const t0 = Date.now();
    let exitCode: number | null = null;
    let stream: Duplex | undefined;
    // Keystrokes sent before the exec is attached wait here.
    const early: Buffer[] = [];
    const write = (b: Buffer) => (stream ? stream.write(b) : early.push(b));
    const control = (what: string, message: string) => ws.send(JSON.stringify({ type: 'error', message: `${what}: ${message}` }));

    ws.on('message', (data: RawData, isBinary: boolean) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (isBinary) return void write(buf);
      let m: { type?: unknown; cols?: unknown; rows?: unknown; data?: unknown };
      try {
        m = JSON.parse(buf.toString('utf8')) as typeof m;
      } catch {
        return control('bad message', 'text frames are JSON control messages');
      }
      if (m?.type === 'input' && typeof m.data === 'string') {
        write(Buffer.from(m.data, 'utf8'));
      } else if (m?.type === 'resize') {
        const ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 1000;
        if (!ok(m.cols) || !ok(m.rows)) return control('bad resize', 'cols and rows are integers 1..1000');
        term.resize(m.cols as number, m.rows as number).catch((err: Error) => control('resize failed', err.message));
      } else {
        control('bad message', "type is 'input' (with data) or 'resize' (with cols, rows)");
      }
    });

    let alive = true;
    ws.on('pong', () => (alive = true));
    const ping = setInterval(() => {
      if (!alive) return ws.terminate();
      alive = false;
      ws.ping();
    }, PING_EVERY_MS);

    const wsClosed = new Promise<void>((resolve) => ws.once('close', resolve));
    let auditId: bigint;
    try {
      // On record before the command starts: a use is audited even if this process dies.
      auditId = (await prisma.auditLog.create({ data: { actor: s.actor, action: 'workspace.terminal', targetType: 'workspace', targetId: s.id, after: { cmd: s.cmd, closed: false } } })).id;
    } catch (err) {
      clearInterval(ping);
      log.error({ workspaceId: s.id, err: (err as Error).message }, 'terminal not audited, so not started');
      ws.close(1011, 'the terminal could not start');
      return;
    }
    try {
      stream = await term.start();
    } catch (err) {
      clearInterval(ping);
      log.warn({ workspaceId: s.id, err: (err as Error).message }, 'terminal did not start');
      ws.close(1011, 'the terminal could not start');
      await finishAudit(auditId, { cmd: s.cmd, closed: true, closedBy: 'error', exitCode: null, durationMs: Date.now() - t0 });
      return;
    }
    const out = stream;
    for (const b of early.splice(0)) out.write(b);
    out.on('data', (chunk: Buffer) => {
      if (ws.readyState !== ws.OPEN) return;
      ws.send(chunk, { binary: true }, () => {
        if (out.isPaused() && ws.bufferedAmount < HIGH_WATER_BYTES / 4) out.resume();
      });
      if (ws.bufferedAmount > HIGH_WATER_BYTES) out.pause();
    });
    const streamEnded = new Promise<void>((resolve) => {
      out.once('end', resolve);
      out.once('close', resolve);
      out.once('error', resolve);
    });

    const first = await Promise.race([streamEnded.then(() => 'exit' as const), wsClosed.then(() => 'client' as const)]);
    if (first === 'exit') {
      exitCode = await term.exitCode().catch(() => null);
      if (ws.readyState === ws.OPEN) {
        ws.send(JSON.stringify({ type: 'exit', exitCode }));
        ws.close(1000, 'exited');
      }
    } else {
      // The client left while the command runs: end every process it started.
      await term.kill().catch((err: Error) => log.warn({ workspaceId: s.id, err: err.message }, 'terminal processes not killed'));
      out.destroy();
    }
    clearInterval(ping);
    const durationMs = Date.now() - t0;
    await finishAudit(auditId, { cmd: s.cmd, closed: true, closedBy: first, exitCode, durationMs });
    log.info({ workspaceId: s.id, actor: s.actor, exitCode, closedBy: first, durationMs }, 'terminal closed');
  }

  const upgrade: UpgradeRoute = {
    match: (pathname) => TERMINAL_PATH.test(pathname),
    handle: (req, socket, head) => void onUpgrade(req, socket, head),
  };
  return { router, upgrade };
}
