import { parseWorkspaceHost, previewPortsProblem, readCookie, routeFor, withoutCookie, workspaceUrl, type RouteRow } from './workspace-routes';

const id = '3f9b8c1e-1111-4222-8333-944455556666';
const row = (over: Partial<RouteRow> = {}): RouteRow => ({
  id,
  ownerId: 'u1',
  status: 'running',
  routeHold: null,
  address: '10.0.0.5',
  httpPort: 49153,
  publishedPorts: { '3000': 49154 },
  previewPorts: [3000],
  updatedAt: 1,
  ...over,
});

describe('workspace host names', () => {
  it('reads ws-{id} and {port}-ws-{id} under the domain, with or without a port, in any case', () => {
    expect(parseWorkspaceHost(`ws-${id}.podex.dev`, 'podex.dev')).toEqual({ workspaceId: id, port: null });
    expect(parseWorkspaceHost(`3000-ws-${id}.podex.dev`, 'podex.dev')).toEqual({ workspaceId: id, port: 3000 });
    expect(parseWorkspaceHost(`WS-${id.toUpperCase()}.localhost:8880`, 'localhost')).toEqual({ workspaceId: id, port: null });
  });

  it('refuses every other host', () => {
    for (const h of [undefined, 'podex.dev', `ws-${id}.evil.dev`, `ws-${id}.podex.dev.evil.dev`, `x.ws-${id}.podex.dev`, `ws-${id}x.podex.dev`, `0-ws-${id}.podex.dev`, `70000-ws-${id}.podex.dev`, `03000-ws-${id}.podex.dev`]) {
      expect(parseWorkspaceHost(h, 'podex.dev')).toBeNull();
    }
  });

  it('builds the URL from the base URL’s scheme and port', () => {
    expect(workspaceUrl('https://podex.dev', id)).toBe(`https://ws-${id}.podex.dev/`);
    expect(workspaceUrl('http://localhost:8880', id, 3000)).toBe(`http://3000-ws-${id}.localhost:8880/`);
  });
});

describe('routing decisions', () => {
  it('routes a running workspace to its server’s private address and host port', () => {
    expect(routeFor(row(), null)).toEqual({ kind: 'proxy', upstream: '10.0.0.5:49153' });
    expect(routeFor(row(), 3000)).toEqual({ kind: 'proxy', upstream: '10.0.0.5:49154' });
    expect(routeFor(row({ address: 'fd00::5' }), null)).toEqual({ kind: 'proxy', upstream: '[fd00::5]:49153' });
  });

  it('answers "moving" with a retry while it migrates or is restored, never a dead upstream', () => {
    for (const r of [row({ routeHold: 'moving' }), row({ status: 'restoring', httpPort: null })]) {
      expect(routeFor(r, null)).toMatchObject({ kind: 'unavailable', state: 'moving', retryAfterSeconds: 5 });
    }
  });

  it('says stopped, stopping, starting and deleting', () => {
    expect(routeFor(row({ status: 'stopped', httpPort: null }), null)).toMatchObject({ kind: 'unavailable', state: 'stopped' });
    expect(routeFor(row({ routeHold: 'stopping' }), null)).toMatchObject({ state: 'stopping' });
    expect(routeFor(row({ status: 'stopped', routeHold: 'starting' }), null)).toMatchObject({ state: 'starting', retryAfterSeconds: 5 });
    expect(routeFor(row({ status: 'provisioning', httpPort: null }), null)).toMatchObject({ state: 'starting' });
    expect(routeFor(row({ routeHold: 'deleting' }), null)).toMatchObject({ state: 'deleting' });
  });

  it('is a 404 for a deleted or unknown workspace and for an undeclared port', () => {
    expect(routeFor(undefined, null).kind).toBe('not-found');
    expect(routeFor(row({ status: 'deleted' }), null).kind).toBe('not-found');
    expect(routeFor(row(), 5000)).toMatchObject({ kind: 'not-found', message: expect.stringMatching(/not a preview port/) });
  });

  it('checks declared preview ports', () => {
    expect(previewPortsProblem([3000, 5173])).toBeNull();
    expect(previewPortsProblem([3000, 3000])).toMatch(/once/);
    expect(previewPortsProblem([8080])).toMatch(/8080/);
    expect(previewPortsProblem(Array.from({ length: 11 }, (_, i) => 3000 + i))).toMatch(/at most 10/);
  });
});

describe('cookies', () => {
  it('removes our cookie and keeps every other one as it was', () => {
    expect(withoutCookie('a=1; podex_ws=x.y.z; b=2', 'podex_ws')).toBe('a=1; b=2');
    expect(withoutCookie('podex_ws=x', 'podex_ws')).toBe('');
    expect(withoutCookie('podex_wsx=1;podex_ws=2', 'podex_ws')).toBe('podex_wsx=1');
    expect(withoutCookie(undefined, 'podex_ws')).toBe('');
    expect(readCookie('a=1; podex_ws=tok=en', 'podex_ws')).toBe('tok=en');
    expect(readCookie('podex_wsx=1', 'podex_ws')).toBeUndefined();
  });
});
