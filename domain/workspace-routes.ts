/**
 * How the Workspace Proxy answers a request for `ws-{id}.{domain}` or `{port}-ws-{id}.{domain}`:
 * the registry row decides, per request. Pure: the API's route table feeds it rows.
 */
import { HTTP_PORT } from './container-spec';

/** At most this many preview ports per workspace (Docker publishes ports only when a container is made). */
export const MAX_PREVIEW_PORTS = 10;
/** Ports a preview may not claim: the IDE's own and SSH. */
export const RESERVED_PORTS: readonly number[] = [HTTP_PORT, 22];
/** Transitions a workflow step announces before it begins, so the URL never routes into a half-done change. */
export const ROUTE_HOLDS = ['moving', 'stopping', 'starting', 'deleting'] as const;
export type RouteHold = (typeof ROUTE_HOLDS)[number];

/** What the route table keeps of a workspace. */
export interface RouteRow {
  id: string;
  ownerId: string;
  status: string;
  routeHold: string | null;
  /** The private address of its server (where its ports are published). */
  address: string | null;
  httpPort: number | null;
  /** Declared preview port → host port. */
  publishedPorts: Record<string, number>;
  previewPorts: number[];
  /** Bumped by every change of the row; a newer row always wins over an older one. */
  updatedAt: number;
}

export type RouteDecision =
  | { kind: 'proxy'; upstream: string }
  | { kind: 'unavailable'; state: string; message: string; retryAfterSeconds?: number }
  | { kind: 'not-found'; message: string };

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const LABEL = new RegExp(`^(?:(\\d{1,5})-)?ws-(${UUID})$`);

export interface WorkspaceHost {
  workspaceId: string;
  /** A preview port, or null for the workspace's own HTTP port. */
  port: number | null;
}

/** Reads `ws-{id}` or `{port}-ws-{id}` off a Host header under `domain`; null for any other host. */
export function parseWorkspaceHost(hostHeader: string | undefined, domain: string): WorkspaceHost | null {
  if (!hostHeader) return null;
  const host = hostHeader.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  const suffix = `.${domain.toLowerCase()}`;
  if (!host.endsWith(suffix)) return null;
  const m = LABEL.exec(host.slice(0, -suffix.length));
  if (!m) return null;
  const port = m[1] === undefined ? null : Number(m[1]);
  if (port !== null && (port < 1 || port > 65535 || String(port) !== m[1])) return null;
  return { workspaceId: m[2], port };
}

/** The host name of a workspace (or one of its preview ports). */
export function workspaceHostname(workspaceId: string, domain: string, port?: number | null): string {
  return `${port ? `${port}-` : ''}ws-${workspaceId}.${domain}`;
}

/** The URL a user opens: the base URL's scheme and port, the workspace's host name. */
export function workspaceUrl(baseUrl: string, workspaceId: string, port?: number | null): string {
  const base = new URL(baseUrl);
  return `${base.protocol}//${workspaceHostname(workspaceId, base.hostname, port)}${base.port ? `:${base.port}` : ''}/`;
}

/** Checks a declared preview-port list; returns the problem, or null when it is fine. */
export function previewPortsProblem(ports: number[]): string | null {
  if (ports.length > MAX_PREVIEW_PORTS) return `at most ${MAX_PREVIEW_PORTS} preview ports`;
  if (new Set(ports).size !== ports.length) return 'each port once';
  const bad = ports.find((p) => !Number.isInteger(p) || p < 1 || p > 65535 || RESERVED_PORTS.includes(p));
  return bad === undefined ? null : `${bad} is not a port a preview may use (1-65535, not ${RESERVED_PORTS.join(' or ')})`;
}

const RETRY_SECONDS = 5;

/** Where a request for `port` (null: the IDE) of this workspace goes, or why it cannot. */
export function routeFor(row: RouteRow | undefined, port: number | null): RouteDecision {
  if (!row || row.status === 'deleted') return { kind: 'not-found', message: 'no such workspace' };
  if (port !== null && !row.previewPorts.includes(port)) return { kind: 'not-found', message: `port ${port} is not a preview port of this workspace` };
  const hold = row.routeHold;
  if (hold === 'moving' || row.status === 'restoring') {
    return { kind: 'unavailable', state: 'moving', message: 'the workspace is moving; it will be back in a moment', retryAfterSeconds: RETRY_SECONDS };
  }
  if (hold === 'stopping') return { kind: 'unavailable', state: 'stopping', message: 'the workspace is stopping' };
  if (hold === 'deleting') return { kind: 'unavailable', state: 'deleting', message: 'the workspace is being deleted' };
  if (hold === 'starting' || row.status === 'pending' || row.status === 'provisioning') {
    return { kind: 'unavailable', state: 'starting', message: 'the workspace is starting', retryAfterSeconds: RETRY_SECONDS };
  }
  if (row.status === 'stopped') return { kind: 'unavailable', state: 'stopped', message: 'the workspace is stopped; start it to open it' };
  if (row.status !== 'running') return { kind: 'unavailable', state: row.status, message: `the workspace is ${row.status}` };
  const hostPort = port === null ? row.httpPort : row.publishedPorts[String(port)];
  if (!row.address || !hostPort) {
    return { kind: 'unavailable', state: 'starting', message: 'the workspace has no published port yet', retryAfterSeconds: RETRY_SECONDS };
  }
  return { kind: 'proxy', upstream: joinHostPort(row.address, hostPort) };
}

/** host:port, with IPv6 addresses in brackets (a dial address). */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Removes one cookie from a Cookie header, keeping every other cookie as it was. */
export function withoutCookie(header: string | undefined, name: string): string {
  if (!header) return '';
  return header
    .split(';')
    .map((c) => c.trim())
    .filter((c) => c && !c.startsWith(`${name}=`))
    .join('; ');
}

/** One cookie's value from a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const c of (header ?? '').split(';')) {
    const t = c.trim();
    if (t.startsWith(`${name}=`)) return t.slice(name.length + 1);
  }
  return undefined;
}
