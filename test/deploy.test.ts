import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import YAML from 'yaml';
import { checkDaemonJson } from '../domain/hardening';
import { Client } from '@temporalio/client';
import { countWorkflowStarts } from '../api/metrics';
import { syncModelPricesWorkflow } from '../workflows';
import { eventually, startHarness, type Harness } from './harness';
import { spawnWorker, uniq } from './helpers';
import { freePort } from './proxy';
import { SignJWT } from 'jose';
import { config } from '../lib/config';
import { temporalDataConverter } from '../lib/temporal';

const ROOT = path.join(__dirname, '..');
const at = (...p: string[]) => path.join(ROOT, ...p);
const run = (cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}) => {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', input: opts.input, env: opts.env ?? process.env });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
};
const files = (dir: string, test: (f: string) => boolean): string[] =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return ['node_modules', '.stack', '.git', 'generated'].includes(e.name) ? [] : files(p, test);
    return test(p) ? [p] : [];
  });

/** Caddy's JSON config, as far as these tests read it. */
interface CaddyHandler {
  handler: string;
  routes?: { handle?: CaddyHandler[] }[];
  rewrite?: { method?: string; uri?: string };
  upstreams?: { dial: string }[];
  handle_response?: { routes: { handle: { request?: { set?: Record<string, string[]> } }[] }[] }[];
}
interface CaddyConfig {
  admin?: { listen?: string };
  apps: {
    http: { servers: Record<string, { listen: string[]; automatic_https?: { disable?: boolean }; routes: { handle: CaddyHandler[] }[] }> };
    tls?: { disable_ocsp_stapling?: boolean; certificates?: { load_files?: { certificate: string; key: string }[] }; automation?: { policies?: { disable_ocsp_stapling?: boolean; issuers?: unknown[] }[] } };
  };
}
/** Every handler of a config, depth first, in the order a request meets them. */
const handlers = (hs: CaddyHandler[]): CaddyHandler[] => hs.flatMap((h) => [h, ...handlers((h.routes ?? []).flatMap((r) => r.handle ?? []))]);
const caddyHome = () => fs.mkdtempSync(path.join(os.tmpdir(), 'podex-caddy-'));
/** `caddy adapt` (or validate) of one of our Caddyfiles, with only the given environment. */
const caddy = (cmd: 'adapt' | 'validate', file: string, env: Record<string, string>) => {
  const home = caddyHome();
  try {
    const r = spawnSync('caddy', [cmd, '--config', at(file), '--adapter', 'caddyfile'], { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: home, XDG_DATA_HOME: home, ...env } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
};

/** Every variable the compose file requires, with stand-in values. */
const COMPOSE_ENV = {
  PATH: process.env.PATH,
  POSTGRES_PASSWORD: 'p',
  REDIS_PASSWORD: 'r',
  JWT_SECRET_KEY: 'j',
  INTERNAL_API_KEY: 'i',
  LLM_KEYS_ENCRYPTION_KEY: 'k',
  TEMPORAL_PAYLOAD_KEYS: 't',
  GRAFANA_ADMIN_PASSWORD: 'g',
  WORKSPACE_PROXY_IP: '203.0.113.8',
  PODEX_ORIGIN_CERT: '/etc/podex-origin/cert.pem',
  PODEX_ORIGIN_KEY: '/etc/podex-origin/key.pem',
};

const DOCKER_USER = at('deploy/servers/common/docker-user.sh');
/** docker-user.sh with only the given environment (its dry run prints the chain it would load). */
const dockerUser = (args: string[], env: Record<string, string>) => run('bash', [DOCKER_USER, ...args], { env: { PATH: process.env.PATH, ...env } });
const ruleLines = (out: string) => out.split('\n').filter((l) => l.startsWith('-A '));

/**
 * A workspace (or platform) server in network namespaces, with no Docker: the nat and filter
 * rules Docker 20.10 writes for one port published on the server's address, a container behind
 * a `br-` bridge, an admitted client and another one on the server's network (the other also
 * routes the containers' subnet through the server). Reports what gets through before and
 * after docker-user.sh is applied (twice), and the chain it leaves.
 */
const FIREWALL_LAB = `
set -euo pipefail
p=pxfw$$
names=(srv adm oth ctr)
cleanup() {
  for n in "\${names[@]}"; do ip netns pids "$p-$n" 2>/dev/null | xargs -r kill 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "\${names[@]}"; do ip netns del "$p-$n" 2>/dev/null || true; done
}
trap cleanup EXIT
nx() { local n=$1; shift; ip netns exec "$p-$n" "$@"; }
for n in "\${names[@]}"; do ip netns add "$p-$n"; ip -n "$p-$n" link set lo up; done
ip -n "$p-srv" link add lan type bridge
ip -n "$p-srv" addr add "$SERVER_IP/32" dev lan
ip -n "$p-srv" link set lan up
for n in adm oth; do
  ip -n "$p-srv" link add "v$n" type veth peer name eth0 netns "$p-$n"
  ip -n "$p-srv" link set "v$n" master lan up
  ip -n "$p-$n" link set eth0 up
  ip -n "$p-$n" route add "$SERVER_IP/32" dev eth0
done
ip -n "$p-adm" addr add "$ADMITTED_IP/32" dev eth0
ip -n "$p-oth" addr add "$OTHER_IP/32" dev eth0
ip -n "$p-srv" route add "$ADMITTED_IP/32" dev lan
ip -n "$p-srv" route add "$OTHER_IP/32" dev lan
ip -n "$p-oth" route add 172.30.0.0/24 via "$SERVER_IP" dev eth0
ip -n "$p-srv" link add br-lab type bridge
ip -n "$p-srv" addr add 172.30.0.1/24 dev br-lab
ip -n "$p-srv" link set br-lab up
ip -n "$p-srv" link add vctr type veth peer name eth0 netns "$p-ctr"
ip -n "$p-srv" link set vctr master br-lab up
ip -n "$p-ctr" addr add 172.30.0.2/24 dev eth0
ip -n "$p-ctr" link set eth0 up
ip -n "$p-ctr" route add default via 172.30.0.1
nx srv sysctl -qw net.ipv4.ip_forward=1
nx srv iptables-restore <<RULES
*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.30.0.0/24 ! -o br-lab -j MASQUERADE
-A DOCKER -d $SERVER_IP/32 ! -i br-lab -p tcp -m tcp --dport $HOST_PORT -j DNAT --to-destination 172.30.0.2:$CONTAINER_PORT
COMMIT
*filter
:FORWARD DROP [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o br-lab -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o br-lab -j DOCKER
-A FORWARD -i br-lab ! -o br-lab -j ACCEPT
-A DOCKER -d 172.30.0.2/32 ! -i br-lab -o br-lab -p tcp -m tcp --dport $CONTAINER_PORT -j ACCEPT
-A DOCKER-USER -j RETURN
COMMIT
RULES
serve() { ip netns exec "$p-$1" "$NODE" -e "require('net').createServer((s) => s.end('$3')).listen($2, '0.0.0.0')" >/dev/null 2>&1 & }
serve ctr "$CONTAINER_PORT" ws
serve oth 9000 out
probe() { nx "$1" timeout 1 bash -c "exec 3<>/dev/tcp/$2/$3 && head -c 8 <&3" 2>/dev/null || echo blocked; }
for _ in $(seq 50); do
  [ "$(probe ctr 127.0.0.1 "$CONTAINER_PORT")" = ws ] && [ "$(probe oth 127.0.0.1 9000)" = out ] && break
  sleep 0.1
done
report() { echo "$1 admitted=$(probe adm "$SERVER_IP" "$HOST_PORT") other=$(probe oth "$SERVER_IP" "$HOST_PORT") direct=$(probe oth 172.30.0.2 "$CONTAINER_PORT") outbound=$(probe ctr "$OTHER_IP" 9000)"; }
report before
nx srv bash "$TOOL" apply "$ROLE"
nx srv bash "$TOOL" apply "$ROLE"
report after
nx srv iptables -S DOCKER-USER
`;
type Reach = { admitted: string; other: string; direct: string; outbound: string };
const firewallLab = (o: { role: 'workspace' | 'platform'; env: Record<string, string>; serverIp: string; admittedIp: string; otherIp: string; hostPort: number; containerPort: number }) => {
  const r = run('bash', ['-c', FIREWALL_LAB], {
    env: {
      PATH: process.env.PATH,
      NODE: process.execPath,
      TOOL: DOCKER_USER,
      ROLE: o.role,
      SERVER_IP: o.serverIp,
      ADMITTED_IP: o.admittedIp,
      OTHER_IP: o.otherIp,
      HOST_PORT: String(o.hostPort),
      CONTAINER_PORT: String(o.containerPort),
      ...o.env,
    },
  });
  expect([r.code, r.out]).toEqual([0, expect.anything()]);
  const reach = (when: string): Reach => {
    const line = r.out.split('\n').find((l) => l.startsWith(`${when} `)) ?? '';
    return Object.fromEntries([...line.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]])) as Reach;
  };
  return { before: reach('before'), after: reach('after'), chain: ruleLines(r.out) };
};
const asRoot = process.getuid?.() === 0 ? it : it.skip;

describe('deploy/: every file machine-checked', () => {
  it('Prometheus config and rules pass promtool, and every alert has a promtool unit test that passes', () => {
    const config = run('promtool', ['check', 'config', at('deploy/monitoring/prometheus.yml')]);
    expect(config.out).toMatch(/SUCCESS/);
    expect(config.code).toBe(0);
    const rules = run('promtool', ['check', 'rules', at('deploy/monitoring/rules/podex.yml')]);
    expect(rules.code).toBe(0);
    const tests = run('promtool', ['test', 'rules', at('deploy/monitoring/tests/podex_test.yml')]);
    expect(tests.out).toMatch(/SUCCESS/);
    expect(tests.code).toBe(0);
    const alerts = (YAML.parse(fs.readFileSync(at('deploy/monitoring/rules/podex.yml'), 'utf8')) as { groups: { rules: { alert?: string }[] }[] }).groups.flatMap((g) => g.rules.map((r) => r.alert!));
    const tested = new Set(
      (YAML.parse(fs.readFileSync(at('deploy/monitoring/tests/podex_test.yml'), 'utf8')) as { tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[] }).tests.flatMap((t) =>
        t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname),
      ),
    );
    expect(alerts.length).toBeGreaterThanOrEqual(9);
    expect(alerts.filter((a) => !tested.has(a))).toEqual([]);
  });

  it('every shell script passes shellcheck', () => {
    const scripts = [...files(at('deploy'), (f) => f.endsWith('.sh')), ...files(at('bench'), (f) => f.endsWith('.sh')), at('prisma/new-migration.sh'), at('.ci/run')];
    expect(scripts.length).toBeGreaterThan(8);
    const r = run('shellcheck', ['-x', '-S', 'warning', ...scripts]);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });

  it('the platform compose file is valid, has every service, and takes every secret from the environment', () => {
    const file = at('deploy/coolify/docker-compose.yml');
    const missing = run('docker-compose', ['-f', file, 'config', '-q'], { env: { PATH: process.env.PATH } });
    expect(missing.code).not.toBe(0);
    expect(missing.out).toMatch(/POSTGRES_PASSWORD/);
    const ok = run('docker-compose', ['-f', file, 'config'], { env: COMPOSE_ENV });
    expect(ok.code).toBe(0);
    const resolved = YAML.parse(ok.out) as { services: Record<string, { environment?: Record<string, string>; user?: string }> };
    expect(Object.keys(resolved.services).sort()).toEqual(
      ['api', 'cadvisor', 'grafana', 'loki', 'node-exporter', 'postgres', 'prometheus', 'promtail', 'redis', 'temporal', 'temporal-ui', 'uptime-kuma', 'worker', 'workspace-proxy'].sort(),
    );
    // In the committed file, every secret-looking value is a variable.
    const raw = YAML.parse(fs.readFileSync(file, 'utf8')) as { services: Record<string, { environment?: Record<string, string> }>; 'x-app-env': Record<string, string> };
    const envs = [raw['x-app-env'], ...Object.values(raw.services).map((s) => s.environment ?? {})];
    for (const e of envs) {
      for (const [k, v] of Object.entries(e)) {
        if (/PASSWORD|SECRET|TOKEN|_KEY$|_PWD$/.test(k) && !/_FILE$/.test(k)) expect([k, String(v)]).toEqual([k, expect.stringMatching(/^\$\{[A-Z_]+(:[?-][^}]*)?\}$/)]);
      }
    }
  });

  it('the compose file runs the Workspace Proxy from the platform Caddyfile, with the origin certificate from required variables, on 443 of one address and no admin port', () => {
    const file = at('deploy/coolify/docker-compose.yml');
    for (const name of ['WORKSPACE_PROXY_IP', 'PODEX_ORIGIN_CERT', 'PODEX_ORIGIN_KEY']) {
      const without = run('docker-compose', ['-f', file, 'config', '-q'], { env: { ...COMPOSE_ENV, [name]: undefined } });
      expect([name, without.code]).toEqual([name, 1]);
      expect(without.out).toContain(`set ${name}`);
    }
    const ok = run('docker-compose', ['-f', file, 'config'], { env: COMPOSE_ENV });
    expect(ok.code).toBe(0);
    type Service = { image?: string; environment: Record<string, string>; ports?: string[]; volumes?: string[]; command?: string[]; read_only?: boolean; cap_drop?: string[] };
    const { services } = YAML.parse(ok.out) as { services: Record<string, Service> };
    const proxy = services['workspace-proxy'];
    expect(proxy.image).toMatch(/^caddy:2\.6\.\d+$/);
    // One port, 443, on the one address the platform's DOCKER-USER rules guard; never the admin API.
    expect(proxy.ports).toEqual([`${COMPOSE_ENV.WORKSPACE_PROXY_IP}:443:443/tcp`]);
    expect(proxy.volumes).toEqual(
      expect.arrayContaining([
        `${at('deploy/proxy/Caddyfile.platform')}:/etc/caddy/Caddyfile:ro`,
        `${at('deploy/proxy/workspace-routes.caddy')}:/etc/caddy/workspace-routes.caddy:ro`,
        `${at('deploy/proxy/temporal-ui.caddy')}:/etc/caddy/temporal-ui.caddy:ro`,
        `${COMPOSE_ENV.PODEX_ORIGIN_CERT}:${proxy.environment.PODEX_ORIGIN_CERT_FILE}:ro`,
        `${COMPOSE_ENV.PODEX_ORIGIN_KEY}:${proxy.environment.PODEX_ORIGIN_KEY_FILE}:ro`,
      ]),
    );
    expect(proxy.volumes!.every((v) => v.endsWith(':ro'))).toBe(true);
    expect(proxy.command).toEqual(['caddy', 'run', '--config', '/etc/caddy/Caddyfile', '--adapter', 'caddyfile']);
    expect([proxy.read_only, proxy.cap_drop]).toEqual([true, ['ALL']]);
    // The forward-auth upstream is the API's own port inside compose.
    expect(proxy.environment.PODEX_AUTH_UPSTREAM).toBe(`api:${services.api.environment.PORT}`);
    expect(proxy.environment.PODEX_WORKSPACE_DOMAIN).toBe('podex.dev');
    // Every variable the Caddyfile and its routes read is set for the container.
    const caddyVars = ['Caddyfile.platform', 'workspace-routes.caddy', 'temporal-ui.caddy'].flatMap((f) => [...fs.readFileSync(at('deploy/proxy', f), 'utf8').matchAll(/\{\$([A-Z_]+)\}/g)].map((m) => m[1]));
    expect(caddyVars.length).toBeGreaterThan(3);
    for (const v of caddyVars) expect([v, proxy.environment[v]]).toEqual([v, expect.any(String)]);
  });

  it('caddy adapts the platform Caddyfile: no automatic HTTPS, no OCSP, no ACME, the origin certificate, admin on loopback, forward auth before the dial; and validates it with a certificate', () => {
    const env = { PODEX_WORKSPACE_DOMAIN: 'podex.dev', PODEX_AUTH_UPSTREAM: 'api:8080', PODEX_ORIGIN_CERT_FILE: '/run/podex-origin/cert.pem', PODEX_ORIGIN_KEY_FILE: '/run/podex-origin/key.pem' };
    const r = caddy('adapt', 'deploy/proxy/Caddyfile.platform', env);
    expect([r.code, r.stderr]).toEqual([0, expect.not.stringMatching(/error/i)]);
    const cfg = JSON.parse(r.stdout) as CaddyConfig;
    expect(cfg.admin?.listen).toBe('127.0.0.1:2019');
    const servers = Object.values(cfg.apps.http.servers);
    expect(servers.map((srv) => [srv.listen, srv.automatic_https?.disable])).toEqual([[[':443'], true]]);
    const tls = cfg.apps.tls!;
    expect(tls.disable_ocsp_stapling).toBe(true);
    expect(tls.certificates?.load_files?.map((f) => [f.certificate, f.key])).toEqual([[env.PODEX_ORIGIN_CERT_FILE, env.PODEX_ORIGIN_KEY_FILE]]);
    for (const policy of tls.automation?.policies ?? []) expect([policy.disable_ocsp_stapling, policy.issuers]).toEqual([true, undefined]);
    const chain = handlers(servers[0].routes.flatMap((route) => route.handle));
    const auth = chain.findIndex((h) => h.handler === 'reverse_proxy' && h.rewrite?.uri === '/proxy/auth');
    const dial = chain.findIndex((h) => h.handler === 'reverse_proxy' && h.upstreams?.[0]?.dial === '{http.request.header.X-Podex-Upstream}');
    expect([auth, dial].every((i) => i >= 0) && auth < dial).toBe(true);
    expect([chain[auth].rewrite?.method, chain[auth].upstreams]).toEqual(['GET', [{ dial: 'api:8080' }]]);
    const copied = chain[auth].handle_response!.flatMap((h) => h.routes.flatMap((route) => route.handle.map((x) => Object.keys(x.request?.set ?? {})))).flat();
    expect(copied).toContain('X-Podex-Upstream');

    // Validation provisions the TLS app, so it reads the certificate and key for real.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-origin-'));
    try {
      const cert = path.join(dir, 'cert.pem');
      const key = path.join(dir, 'key.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=*.podex.dev', '-addext', 'subjectAltName=DNS:*.podex.dev', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
      const valid = caddy('validate', 'deploy/proxy/Caddyfile.platform', { ...env, PODEX_ORIGIN_CERT_FILE: cert, PODEX_ORIGIN_KEY_FILE: key });
      expect([valid.code, valid.stdout]).toEqual([0, expect.stringMatching(/Valid configuration/)]);
      const missing = caddy('validate', 'deploy/proxy/Caddyfile.platform', { ...env, PODEX_ORIGIN_CERT_FILE: path.join(dir, 'none.pem'), PODEX_ORIGIN_KEY_FILE: key });
      expect(missing.code).not.toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('finding 7: the Temporal UI publishes no port, sits on an internal network with Temporal and the proxy alone, and its one route asks /proxy/admin-auth before the dial', () => {
    const ok = run('docker-compose', ['-f', at('deploy/coolify/docker-compose.yml'), 'config'], { env: COMPOSE_ENV });
    expect(ok.code).toBe(0);
    type Service = { ports?: string[]; networks?: Record<string, unknown>; environment?: Record<string, string> };
    const { services, networks } = YAML.parse(ok.out) as { services: Record<string, Service>; networks: Record<string, { internal?: boolean } | null> };
    const ui = services['temporal-ui'];
    expect(ui.ports).toBeUndefined();
    expect(Object.keys(ui.networks ?? {})).toEqual(['temporal-ui']);
    expect(networks['temporal-ui']?.internal).toBe(true);
    const onUiNetwork = Object.entries(services).filter(([, svc]) => 'temporal-ui' in (svc.networks ?? {})).map(([name]) => name);
    expect(onUiNetwork.sort()).toEqual(['temporal', 'temporal-ui', 'workspace-proxy']);
    expect(services['workspace-proxy'].environment?.PODEX_TEMPORAL_UI_UPSTREAM).toBe('temporal-ui:8080');

    const r = caddy('adapt', 'deploy/proxy/Caddyfile.platform', {
      PODEX_WORKSPACE_DOMAIN: 'podex.dev',
      PODEX_AUTH_UPSTREAM: 'api:8080',
      PODEX_ORIGIN_CERT_FILE: '/run/podex-origin/cert.pem',
      PODEX_ORIGIN_KEY_FILE: '/run/podex-origin/key.pem',
      PODEX_TEMPORAL_UI_UPSTREAM: 'temporal-ui:8080',
    });
    expect([r.code, r.stderr]).toEqual([0, expect.not.stringMatching(/error/i)]);
    type Route = { match?: { host?: string[] }[]; handle: CaddyHandler[] };
    const routes = (Object.values((JSON.parse(r.stdout) as CaddyConfig).apps.http.servers)[0].routes as Route[]).map((route) => ({
      hosts: route.match?.flatMap((m) => m.host ?? []) ?? [],
      chain: handlers(route.handle),
    }));
    const dialsUi = (h: CaddyHandler) => h.handler === 'reverse_proxy' && h.upstreams?.some((u) => u.dial === 'temporal-ui:8080');
    const toUi = routes.filter((route) => route.chain.some(dialsUi));
    // One route, for its own host, met before the workspaces' wildcard.
    expect(toUi.map((route) => route.hosts)).toEqual([['temporal.podex.dev']]);
    expect(routes.findIndex((route) => route.chain.some(dialsUi))).toBeLessThan(routes.findIndex((route) => route.hosts.includes('*.podex.dev')));
    const chain = toUi[0].chain;
    const auth = chain.findIndex((h) => h.handler === 'reverse_proxy' && h.rewrite?.uri === '/proxy/admin-auth');
    const dial = chain.findIndex(dialsUi);
    expect(auth).toBeGreaterThanOrEqual(0);
    expect(auth).toBeLessThan(dial);
    expect(chain[auth].upstreams).toEqual([{ dial: 'api:8080' }]);
  });

  it('finding 11: the api and the worker mount every file their settings name, each its own Docker client certificate, the restic password file alone, and the API the backup repository', () => {
    const ok = run('docker-compose', ['-f', at('deploy/coolify/docker-compose.yml'), 'config'], { env: COMPOSE_ENV });
    expect(ok.code).toBe(0);
    type Service = { environment: Record<string, string>; volumes?: string[] };
    const { services } = YAML.parse(ok.out) as { services: Record<string, Service> };
    const mounts = (name: string) => (services[name].volumes ?? []).map((v) => ({ source: v.split(':')[0], target: v.split(':')[1] }));
    const inside = (file: string, target: string) => file === target || file.startsWith(`${target}/`);
    for (const name of ['api', 'worker']) {
      const env = services[name].environment;
      const files = [...Object.entries(env).filter(([k]) => k.endsWith('_FILE')).map(([, v]) => v), env.RESTIC_REPOSITORY];
      expect(files.length).toBeGreaterThanOrEqual(5);
      for (const f of files) expect([name, f, mounts(name).some((m) => inside(f, m.target))]).toEqual([name, f, true]);
      // The secrets folder is never mounted whole: only the password file in it.
      expect(mounts(name).filter((m) => m.source.startsWith('/etc/podex')).map((m) => m.source).sort()).toEqual([`/etc/podex/certs/${name}`, '/etc/podex/restic-password']);
      expect(mounts(name).find((m) => m.target === '/run/podex-certs')?.source).toBe(`/etc/podex/certs/${name}`);
    }
    // Docker-published or not, the API never holds the worker's key, nor the folder with both.
    expect(mounts('api').some((m) => /certs(\/worker)?\/?$/.test(m.source))).toBe(false);
    expect(mounts('api').find((m) => m.target === '/var/lib/podex')?.source).toBe('podex-data');
  });

  it('finding 11: the compose file’s PostgreSQL is the major version the worker image’s pg_dump dumps (Debian’s, pinned in the Dockerfile)', () => {
    const ok = run('docker-compose', ['-f', at('deploy/coolify/docker-compose.yml'), 'config'], { env: COMPOSE_ENV });
    const { services } = YAML.parse(ok.out) as { services: Record<string, { image?: string }> };
    const server = /^postgres:(\d+)(\.\d+)*(-\S+)?$/.exec(services.postgres.image ?? '');
    const df = fs.readFileSync(at('deploy/docker/Dockerfile'), 'utf8');
    const client = /\bpostgresql-client-(\d+)\b/.exec(df);
    // What each Debian release ships (a release's postgresql-client-N exists for that N alone).
    const shipped: Record<string, string> = { bookworm: '15', trixie: '17' };
    const release = /^ARG NODE_IMAGE=node:\d+-(\w+)/m.exec(df)?.[1] ?? '';
    expect([server?.[1], client?.[1]]).toEqual([shipped[release], shipped[release]]);
    expect(release).toBe('bookworm');
    // The runtime installs exactly that client (no unpinned metapackage beside it).
    expect(df).not.toMatch(/\bpostgresql-client(?!-)/);
  });

  it('caddy adapts the loopback Caddyfile to one listener on 127.0.0.1 and an admin API on loopback', () => {
    const r = caddy('adapt', 'deploy/proxy/Caddyfile', { PODEX_PROXY_BIND: '127.0.0.1', PODEX_PROXY_PORT: '8880', PODEX_PROXY_ADMIN: '127.0.0.1:8881', PODEX_AUTH_UPSTREAM: '127.0.0.1:8080' });
    expect(r.code).toBe(0);
    const cfg = JSON.parse(r.stdout) as CaddyConfig;
    expect(cfg.admin?.listen).toBe('127.0.0.1:8881');
    expect(Object.values(cfg.apps.http.servers).map((srv) => [srv.listen, srv.automatic_https?.disable])).toEqual([[['127.0.0.1:8880'], true]]);
  });

  it('the images build in stages and run as an unprivileged user, with api and worker targets and no secrets', () => {
    const df = fs.readFileSync(at('deploy/docker/Dockerfile'), 'utf8');
    const stages = [...df.matchAll(/^FROM\s+\S+(?:\s+AS\s+(\S+))?/gim)].map((m) => m[1]);
    expect(stages).toEqual(['build', 'tools', 'runtime', 'api', 'worker']);
    // The worker carries the tools image's root filesystem (helpers never run a workspace image, finding 12).
    expect(df).toMatch(/COPY --from=tools \/tools-rootfs\.tar \/opt\/podex\/tools-rootfs\.tar/);
    expect(df).toMatch(/TOOLS_IMAGE_ARCHIVE=\/opt\/podex\/tools-rootfs\.tar/);
    expect(df).toMatch(/^USER podex:podex$/m);
    expect(df).toMatch(/workers\/bundle\.ts/);
    expect(df).toMatch(/WORKFLOW_BUNDLE_PATH=\/app\/dist\/workflow-bundle\.js/);
    expect(df).not.toMatch(/^(ENV|ARG)\s+\S*(PASSWORD|SECRET|TOKEN|API_KEY)/im);
    expect(fs.readFileSync(at('.dockerignore'), 'utf8')).toMatch(/^\.stack$/m);
  });

  it('the worker image’s prebuilt workflow bundle builds and holds every workflow', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-bundle-'));
    try {
      execFileSync(process.execPath, ['--import', 'tsx', at('workers/bundle.ts')], { cwd: ROOT, env: { ...process.env, WORKFLOW_BUNDLE_OUT: path.join(out, 'bundle.js') } });
      const code = fs.readFileSync(path.join(out, 'bundle.js'), 'utf8');
      for (const wf of ['workspaceWorkflow', 'drainServerWorkflow', 'backupWorkflow', 'cutoverWorkflow', 'llmJobWorkflow']) expect(code).toContain(wf);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 60_000);

  it('the workspace daemon.json passes every hardening check of seed Task 5.4', () => {
    const results = checkDaemonJson(JSON.parse(fs.readFileSync(at('deploy/servers/workspace/daemon.json'), 'utf8')));
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(results.length).toBeGreaterThanOrEqual(15);
    // The check is not vacuous: a weakened file fails the right items.
    const weak = checkDaemonJson({ 'default-runtime': 'runc', icc: true, tls: true });
    expect(weak.filter((r) => !r.ok).map((r) => r.key)).toEqual(expect.arrayContaining(['default-runtime', 'icc', 'tlsverify', 'userns-remap', 'live-restore']));
  });

  it('cloud-init files parse and run the bootstrap scripts that exist; GitHub workflows run the README test command and the Coolify webhooks', () => {
    for (const role of ['workspace', 'platform']) {
      const text = fs.readFileSync(at(`deploy/servers/${role}/cloud-init.yaml`), 'utf8');
      expect(text.split('\n')[0]).toBe('#cloud-config');
      const doc = YAML.parse(text) as { runcmd: string[][] };
      expect(JSON.stringify(doc.runcmd)).toContain(`deploy/servers/${role}/bootstrap.sh`);
      expect(fs.statSync(at(`deploy/servers/${role}/bootstrap.sh`)).mode & 0o111).not.toBe(0);
    }
    const ci = YAML.parse(fs.readFileSync(at('.github/workflows/ci.yml'), 'utf8')) as { jobs: { test: { steps: { run?: string }[] } } };
    expect(ci.jobs.test.steps.some((s) => s.run?.includes('.ci/run'))).toBe(true);
    const deploy = fs.readFileSync(at('.github/workflows/deploy.yml'), 'utf8');
    expect(YAML.parse(deploy).on.workflow_run.workflows).toEqual(['CI']);
    // Issue 17 (Low): a successful CI run deploys only when it was a push to this repository's own main
    // (a fork's pull request from a branch named main also runs CI, with head_repository the fork).
    const condition = (YAML.parse(deploy) as { jobs: { deploy: { if: string } } }).jobs.deploy.if.split('&&').map((c) => c.trim());
    expect(condition.sort()).toEqual(
      [
        "github.event.workflow_run.conclusion == 'success'",
        "github.event.workflow_run.event == 'push'",
        "github.event.workflow_run.head_branch == 'main'",
        'github.event.workflow_run.head_repository.full_name == github.repository',
      ].sort(),
    );
    expect(deploy).toMatch(/secrets\.COOLIFY_TOKEN/);
    expect(deploy).toMatch(/secrets\.COOLIFY_WEBHOOK_API/);
    // Grafana: dashboards parse and use the provisioned data sources.
    const uids = new Set((YAML.parse(fs.readFileSync(at('deploy/monitoring/grafana/provisioning/datasources/datasources.yml'), 'utf8')) as { datasources: { uid: string }[] }).datasources.map((d) => d.uid));
    for (const f of files(at('deploy/monitoring/grafana/dashboards'), (p) => p.endsWith('.json'))) {
      const board = JSON.parse(fs.readFileSync(f, 'utf8')) as { uid: string; panels: { datasource: { uid: string }; targets: { expr: string }[] }[] };
      expect(board.uid).toMatch(/^podex-/);
      for (const p of board.panels) {
        expect(uids.has(p.datasource.uid)).toBe(true);
        expect(p.targets.length).toBeGreaterThan(0);
      }
    }
  });

  it('the certificate script makes a CA, a server certificate with its SANs and a client certificate that openssl verifies', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-certs-'));
    try {
      const script = at('deploy/certs/make-certs.sh');
      execFileSync('bash', [script, 'ca', dir]);
      execFileSync('bash', [script, 'server', dir, 'ws1', 'DNS:ws1.podex.internal,IP:10.0.0.5']);
      execFileSync('bash', [script, 'client', dir, 'orchestrator']);
      const server = fs.readdirSync(path.join(dir, 'ws1'));
      const cert = (who: string) => path.join(dir, who, 'cert.pem');
      expect(server).toEqual(expect.arrayContaining(['cert.pem', 'key.pem']));
      for (const who of ['ws1', 'orchestrator']) expect(execFileSync('openssl', ['verify', '-CAfile', path.join(dir, 'ca.pem'), cert(who)]).toString()).toMatch(/: OK/);
      const text = (who: string) => execFileSync('openssl', ['x509', '-noout', '-text', '-in', cert(who)]).toString();
      expect(text('ws1')).toMatch(/DNS:ws1\.podex\.internal/);
      expect(text('ws1')).toMatch(/IP Address:10\.0\.0\.5/);
      expect(text('ws1')).toMatch(/TLS Web Server Authentication/);
      expect(text('orchestrator')).toMatch(/TLS Web Client Authentication/);
      expect(text('orchestrator')).not.toMatch(/TLS Web Server Authentication/);
      expect(execFileSync('openssl', ['x509', '-noout', '-text', '-in', path.join(dir, 'ca.pem')]).toString()).toMatch(/CA:TRUE/);
      expect(fs.statSync(path.join(dir, 'ws1', 'key.pem')).mode & 0o077).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/: DOCKER-USER rules for the ports Docker publishes', () => {
  // The lab's container (172.30.0.2) is outside these pools: its outbound check stays as before.
  const WS = { PLATFORM_PRIVATE_IP: '10.0.0.2', SERVER_PRIVATE_IP: '10.0.0.5', WORKSPACE_POOLS: '172.20.0.0/14', WORKSPACE_DNS: '185.12.64.1' };
  const CLOUDFLARE = at('deploy/servers/platform/cloudflare-ips-v4.txt');
  const PLATFORM = { WORKSPACE_PROXY_IP: '198.51.100.7', CLOUDFLARE_IPS_FILE: CLOUDFLARE };

  it('workspace servers: the dry run prints the whole chain, which admits the platform alone to published ports and drops everyone else', () => {
    const r = dockerUser(['rules', 'workspace'], WS);
    expect(r.code).toBe(0);
    // The whole chain is replaced in one transaction: the restore input names it, then its rules.
    expect(r.out.split('\n').slice(0, 2)).toEqual(['*filter', ':DOCKER-USER - [0:0]']);
    expect(ruleLines(r.out)).toEqual([
      '-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
      '-A DOCKER-USER -s 10.0.0.2/32 -p tcp -m conntrack --ctstate DNAT --ctorigdst 10.0.0.5 -j RETURN',
      '-A DOCKER-USER -m conntrack --ctstate DNAT -j DROP',
      '-A DOCKER-USER ! -i br-+ -o br-+ -m conntrack --ctstate NEW -j DROP',
      '-A DOCKER-USER ! -i docker0 -o docker0 -m conntrack --ctstate NEW -j DROP',
      // Workspace egress (issue 17, finding 4): DNS to the resolver, then no private, link-local or reserved range.
      '-A DOCKER-USER -s 172.20.0.0/14 -m physdev --physdev-is-bridged -j RETURN',
      '-A DOCKER-USER -s 172.20.0.0/14 -d 185.12.64.1/32 -p udp -m udp --dport 53 -j RETURN',
      '-A DOCKER-USER -s 172.20.0.0/14 -d 185.12.64.1/32 -p tcp -m tcp --dport 53 -j RETURN',
      ...['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '169.254.0.0/16', '172.16.0.0/12', '192.0.0.0/24', '192.168.0.0/16', '198.18.0.0/15', '224.0.0.0/4', '240.0.0.0/4'].map((r) => `-A DOCKER-USER -s 172.20.0.0/14 -d ${r} -j DROP`),
      '-A DOCKER-USER -j RETURN',
      // The host itself: replies and loopback first, DNS if the host is the resolver, nothing else.
      '-A PODEX-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
      '-A PODEX-INPUT -i lo -j RETURN',
      '-A PODEX-INPUT -s 172.20.0.0/14 -d 185.12.64.1/32 -p udp -m udp --dport 53 -j RETURN',
      '-A PODEX-INPUT -s 172.20.0.0/14 -d 185.12.64.1/32 -p tcp -m tcp --dport 53 -j RETURN',
      '-A PODEX-INPUT -s 172.20.0.0/14 -j DROP',
      '-A PODEX-INPUT -j RETURN',
    ]);
    // The pools are daemon.json's: the rules match the networks Docker makes.
    const daemon = JSON.parse(fs.readFileSync(at('deploy/servers/workspace/daemon.json'), 'utf8')) as { 'default-address-pools': { base: string; size: number }[] };
    expect(daemon['default-address-pools']).toEqual([{ base: '172.20.0.0/14', size: 28 }]);
    expect(fs.readFileSync(at('deploy/servers/workspace/bootstrap.sh'), 'utf8')).toContain(`WORKSPACE_POOLS=$(jq -r '[."default-address-pools"[].base] | join(",")' "$here/daemon.json")`);
    // A missing or malformed value prints nothing to load (a newline would be a rule of its own).
    for (const bad of [{ SERVER_PRIVATE_IP: '10.0.0.5' }, { ...WS, WORKSPACE_POOLS: '' }, { ...WS, WORKSPACE_DNS: '1.1.1.1,x' }, { ...WS, PLATFORM_PRIVATE_IP: '10.0.0.2\n-A DOCKER-USER -j ACCEPT' }, { ...WS, SERVER_PRIVATE_IP: '10.0.0.0/16' }]) {
      const refused = dockerUser(['rules', 'workspace'], bad);
      expect([refused.code, ruleLines(refused.out)]).toEqual([2, []]);
    }
    expect(dockerUser(['rules', 'workspace'], { SERVER_PRIVATE_IP: '10.0.0.5' }).out).toMatch(/set PLATFORM_PRIVATE_IP/);
  });

  it('platform: the dry run admits each Cloudflare range, and only those, to the Workspace Proxy address on 443', () => {
    const ranges = fs.readFileSync(CLOUDFLARE, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    expect(ranges.length).toBeGreaterThanOrEqual(15);
    const r = dockerUser(['rules', 'platform'], PLATFORM);
    expect(r.code).toBe(0);
    expect(ruleLines(r.out)).toEqual([
      '-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
      ...ranges.map((range) => `-A DOCKER-USER -s ${range} -p tcp -m conntrack --ctstate DNAT --ctorigdst 198.51.100.7 --ctorigdstport 443 -j RETURN`),
      '-A DOCKER-USER -p tcp -m conntrack --ctstate DNAT --ctorigdst 198.51.100.7 --ctorigdstport 443 -j DROP',
      '-A DOCKER-USER -j RETURN',
    ]);
    expect(dockerUser(['rules', 'platform'], { WORKSPACE_PROXY_IP: '198.51.100.7', CLOUDFLARE_IPS_FILE: '/nonexistent' }).code).toBe(2);
  });

  it('the bootstraps install the rules with a unit that loads them before Docker starts, at every Docker restart, and keeps Docker down if they cannot load', () => {
    // harden_docker_user itself, with the commands that would change this machine printed instead.
    const stubbed = String.raw`
      source "$1"
      write_if_changed() { echo "== $1"; cat; }
      install() { :; }
      systemctl() { echo "systemctl $*"; }
      harden_docker_user workspace PLATFORM_PRIVATE_IP=10.0.0.2 SERVER_PRIVATE_IP=10.0.0.5 WORKSPACE_POOLS=172.20.0.0/14 WORKSPACE_DNS=`;
    const r = run('bash', ['-c', stubbed, 'stub', at('deploy/servers/common/harden.sh')]);
    expect(r.code).toBe(0);
    const written = Object.fromEntries(r.out.split(/^== /m).slice(1).map((chunk) => [chunk.slice(0, chunk.indexOf('\n')), chunk.slice(chunk.indexOf('\n') + 1)]));
    expect(written['/usr/local/sbin/podex-docker-user']).toContain('podex-docker-user apply workspace|platform');
    expect(written['/etc/podex/docker-user.env']).toBe('PLATFORM_PRIVATE_IP=10.0.0.2\nSERVER_PRIVATE_IP=10.0.0.5\nWORKSPACE_POOLS=172.20.0.0/14\nWORKSPACE_DNS=\n');
    const unit = written['/etc/systemd/system/podex-docker-user.service'] ?? '';
    for (const line of ['Before=docker.service', 'PartOf=docker.service', 'Type=oneshot', 'RemainAfterExit=yes', 'EnvironmentFile=/etc/podex/docker-user.env', 'ExecStart=/usr/local/sbin/podex-docker-user apply workspace', 'RequiredBy=docker.service']) {
      expect(unit.split('\n')).toContain(line);
    }
    expect(unit).not.toMatch(/ExecStop/);
    expect(r.out).toMatch(/^systemctl enable podex-docker-user\.service$/m);
    expect(r.out).toMatch(/^systemctl restart podex-docker-user\.service$/m);
    // Nothing is installed when a setting is wrong.
    const bad = run('bash', ['-c', stubbed.replace('SERVER_PRIVATE_IP=10.0.0.5', 'SERVER_PRIVATE_IP='), 'stub', at('deploy/servers/common/harden.sh')]);
    expect([bad.code, bad.out]).toEqual([2, expect.not.stringMatching(/^== /m)]);

    // Each bootstrap calls it with its role, the workspace's before Docker is restarted with daemon.json.
    const ws = fs.readFileSync(at('deploy/servers/workspace/bootstrap.sh'), 'utf8');
    const call = ws.indexOf('harden_docker_user workspace PLATFORM_PRIVATE_IP="$PLATFORM_PRIVATE_IP" SERVER_PRIVATE_IP="$SERVER_PRIVATE_IP"');
    expect(call).toBeGreaterThan(0);
    expect(call).toBeLessThan(ws.indexOf('systemctl restart docker'));
    const platform = fs.readFileSync(at('deploy/servers/platform/bootstrap.sh'), 'utf8');
    expect(platform).toContain('harden_docker_user platform WORKSPACE_PROXY_IP="$WORKSPACE_PROXY_IP" CLOUDFLARE_IPS_FILE=/etc/podex/cloudflare-ips-v4.txt');
    expect(platform).toMatch(/^: "\$\{WORKSPACE_PROXY_IP:\?/m);
    // IPv4 only is enough while Docker's IPv6 is off: no published port has an IPv6 address.
    const daemon = JSON.parse(fs.readFileSync(at('deploy/servers/workspace/daemon.json'), 'utf8')) as Record<string, unknown>;
    expect([daemon.ipv6, daemon.ip6tables]).toEqual([undefined, undefined]);
  });

  asRoot('workspace servers, in network namespaces: after the rules only the platform reaches a published port, no one reaches a container directly, containers still reach out; applied twice, the chain is the dry run', () => {
    const lab = firewallLab({ role: 'workspace', env: WS, serverIp: '10.0.0.5', admittedIp: '10.0.0.2', otherIp: '10.0.0.3', hostPort: 49153, containerPort: 8080 });
    // Docker's own rules alone let everyone in: the test can see a hole.
    expect(lab.before).toEqual({ admitted: 'ws', other: 'ws', direct: 'ws', outbound: 'out' });
    expect(lab.after).toEqual({ admitted: 'ws', other: 'blocked', direct: 'blocked', outbound: 'out' });
    expect(lab.chain).toEqual(ruleLines(dockerUser(['rules', 'workspace'], WS).out).filter((l) => l.startsWith('-A DOCKER-USER ')));
  }, 30_000);

  asRoot('platform, in network namespaces: after the rules only a Cloudflare address reaches the Workspace Proxy on 443; applied twice, the chain is the dry run', () => {
    const lab = firewallLab({ role: 'platform', env: PLATFORM, serverIp: '198.51.100.7', admittedIp: '173.245.48.10', otherIp: '203.0.113.9', hostPort: 443, containerPort: 443 });
    expect([lab.before.admitted, lab.before.other]).toEqual(['ws', 'ws']);
    expect([lab.after.admitted, lab.after.other, lab.after.outbound]).toEqual(['ws', 'blocked', 'out']);
    expect(lab.chain).toEqual(ruleLines(dockerUser(['rules', 'platform'], PLATFORM).out));
  }, 30_000);
});

describe('finding 11: the platform’s secrets as the containers (uid 10001) see them', () => {
  asRoot('podex-secrets.sh leaves /etc/podex root’s, and through bind mounts like the compose file’s, uid 10001 reads the password and each certificate folder and nothing else', () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-secrets-'));
    try {
      fs.chmodSync(base, 0o755);
      const root = path.join(base, 'etc-podex');
      // As an operator leaves it: root-only files, the bootstrap's own settings beside them.
      fs.mkdirSync(root, { mode: 0o700 });
      fs.writeFileSync(path.join(root, 'bootstrap.env'), 'OPERATOR_IP=203.0.113.7\n', { mode: 0o600 });
      for (const who of ['api', 'worker']) {
        fs.mkdirSync(path.join(root, 'certs', who), { recursive: true, mode: 0o700 });
        for (const f of ['ca.pem', 'cert.pem', 'key.pem']) fs.writeFileSync(path.join(root, 'certs', who, f), `${who} ${f}\n`, { mode: 0o600 });
      }
      const script = at('deploy/servers/platform/podex-secrets.sh');
      for (let i = 0; i < 2; i++) expect(run('bash', [script, root]).code).toBe(0);
      expect(fs.statSync(root).mode & 0o777).toBe(0o700);
      const password = path.join(root, 'restic-password');
      expect(fs.readFileSync(password, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
      expect([fs.statSync(password).mode & 0o777, fs.statSync(password).uid, fs.statSync(password).gid]).toEqual([0o640, 0, 10001]);

      // The container's view: its mounts, read as the image's user (uid and gid 10001, no other group).
      const view = String.raw`
        set -u
        mkdir -p "$1/run/certs" "$1/run/secrets"; touch "$1/run/secrets/restic-password"
        mount --bind "$2/certs/api" "$1/run/certs"
        mount --bind "$2/restic-password" "$1/run/secrets/restic-password"
        as() { setpriv --reuid 10001 --regid 10001 --clear-groups "$@" 2>/dev/null; }
        for f in "$1/run/certs/ca.pem" "$1/run/certs/cert.pem" "$1/run/certs/key.pem" "$1/run/secrets/restic-password" "$2/bootstrap.env" "$2/certs/worker/key.pem"; do
          if as head -c 3 "$f" >/dev/null; then echo "read $f"; else echo "refused $f"; fi
        done
        as ls "$1/run/certs" | paste -sd ' '`;
      const r = run('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', view, 'view', base, root]);
      expect(r.code).toBe(0);
      expect(r.out.trim().split('\n')).toEqual([
        `read ${base}/run/certs/ca.pem`,
        `read ${base}/run/certs/cert.pem`,
        `read ${base}/run/certs/key.pem`,
        `read ${base}/run/secrets/restic-password`,
        `refused ${root}/bootstrap.env`,
        `refused ${root}/certs/worker/key.pem`,
        'ca.pem cert.pem key.pem',
      ]);
      // The image's user is the one the modes are for; the bootstrap runs the script.
      expect(fs.readFileSync(at('deploy/docker/Dockerfile'), 'utf8')).toMatch(/--gid 10001 podex[\s\S]*--uid 10001 --gid podex/);
      expect(fs.readFileSync(at('deploy/servers/platform/bootstrap.sh'), 'utf8')).toMatch(/^"\$here\/podex-secrets\.sh" \/etc\/podex$/m);
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});

describe('finding 7, live: the Temporal UI route (deploy/proxy/temporal-ui.caddy) in Debian’s Caddy, asking the real API', () => {
  let h: Harness;
  let ui: http.Server;
  let proxy: ChildProcess | undefined;
  let port = 0;
  let dir = '';
  const seen: http.IncomingHttpHeaders[] = [];
  beforeAll(async () => {
    h = await startHarness('temporal-ui', {}, { inProcessWorker: false });
    // Stands in for the Temporal UI: it records what reaches it.
    ui = http.createServer((req, res) => {
      seen.push(req.headers);
      res.end('temporal ui');
    });
    await new Promise<void>((resolve) => ui.listen(0, '127.0.0.1', resolve));
    port = await freePort();
    const admin = await freePort();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-temporal-ui-'));
    const file = path.join(dir, 'Caddyfile');
    fs.writeFileSync(file, `{\n\tadmin 127.0.0.1:${admin}\n\tauto_https off\n}\nhttp://127.0.0.1:${port} {\n\timport ${at('deploy/proxy/temporal-ui.caddy')}\n}\n`);
    proxy = spawn('caddy', ['run', '--config', file, '--adapter', 'caddyfile'], {
      env: {
        PATH: process.env.PATH,
        HOME: dir,
        XDG_DATA_HOME: dir,
        XDG_CONFIG_HOME: dir,
        PODEX_AUTH_UPSTREAM: new URL(h.url).host,
        PODEX_TEMPORAL_UI_UPSTREAM: `127.0.0.1:${(ui.address() as AddressInfo).port}`,
      },
      stdio: 'ignore',
    });
    await eventually(async () => ((await fetch(`http://127.0.0.1:${admin}/config/`).catch(() => undefined))?.ok ? true : undefined), 15_000);
  }, 60_000);
  afterAll(async () => {
    proxy?.kill('SIGTERM');
    ui?.close();
    await h?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const get = async (headers: Record<string, string> = {}) => {
    const res = await fetch(`http://127.0.0.1:${port}/namespaces/default/workflows`, { headers });
    return { status: res.status, challenge: res.headers.get('www-authenticate'), body: await res.text() };
  };
  const basic = (token: string) => ({ authorization: `Basic ${Buffer.from(`operator:${token}`).toString('base64')}` });

  it('without an admin token nothing reaches the UI: 401 with a Basic challenge, 403 for a user; an admin (Basic or Bearer) gets the UI without the token', async () => {
    const secret = new TextEncoder().encode(config().JWT_SECRET_KEY);
    const expired = await new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'HS256' }).setSubject('old-admin').setIssuer('podex').setAudience('podex-orchestrator').setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(secret);
    const refused: Record<string, string>[] = [{}, basic('not-a-token'), basic(expired), { authorization: 'Basic Og==' }, { 'x-internal-api-key': config().INTERNAL_API_KEY }];
    for (const headers of refused) {
      const r = await get(headers);
      expect([r.status, r.challenge]).toEqual([401, 'Basic realm="Podex operators", charset="UTF-8"']);
    }
    for (const headers of [basic(h.userToken), { authorization: `Bearer ${h.userToken}` }]) {
      const r = await get(headers);
      expect([r.status, JSON.parse(r.body).error]).toEqual([403, 'forbidden']);
    }
    expect(seen).toEqual([]);

    for (const headers of [basic(h.adminToken), { authorization: `Bearer ${h.adminToken}` }, basic(h.adminToken)]) {
      const r = await get(headers);
      expect([r.status, r.body]).toEqual([200, 'temporal ui']);
    }
    expect(seen.length).toBe(3);
    expect(seen.map((headers) => headers.authorization)).toEqual([undefined, undefined, undefined]);
  });
});

describe('deploy/: fail2ban on the Docker API (issue 17, finding 10)', () => {
  // Lines dockerd writes (seen on the local engines), from a stranger and from the platform (10.0.0.2).
  const LOG = [
    "2026-12-02 17:06:29.146162 I | http: TLS handshake error from 203.0.113.9:50596: tls: client didn't provide a certificate",
    '2026-12-02 17:06:29.160034 I | http: TLS handshake error from 10.0.0.2:50604: EOF',
    '2026-12-02 17:06:29.300686 I | http: TLS handshake error from 203.0.113.10:50620: tls: failed to verify client certificate: x509: certificate signed by unknown authority',
    '2026-12-02 17:06:30.803598 I | http: TLS handshake error from 10.0.0.2:50634: read tcp 10.0.0.5:2376->10.0.0.2:50634: read: connection reset by peer',
    '2026-12-02 17:06:31.000000 I | http: TLS handshake error from 10.0.0.2:50640: remote error: tls: bad certificate',
  ].join('\n');

  it('the jail counts only certificate failures and never bans the platform, as fail2ban itself reads the files harden.sh writes', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-f2b-'));
    try {
      fs.cpSync('/etc/fail2ban', dir, { recursive: true });
      const stubbed = [
        'source "$1"',
        'apt_install() { :; }',
        'systemctl() { :; }',
        'write_if_changed() { mkdir -p "$(dirname "$D${1#/etc/fail2ban}")"; cat >"$D${1#/etc/fail2ban}"; }',
        'harden_fail2ban 10.0.0.2',
      ].join('\n');
      expect(run('bash', ['-c', stubbed, 'stub', at('deploy/servers/common/harden.sh')], { env: { PATH: process.env.PATH, D: dir } }).code).toBe(0);
      fs.writeFileSync(path.join(dir, 'dockerd.log'), LOG);
      const ips = run('fail2ban-regex', ['-o', 'ip', path.join(dir, 'dockerd.log'), path.join(dir, 'filter.d/docker-auth.conf')]);
      expect([ips.code, ips.out.trim().split('\n')]).toEqual([0, ['203.0.113.9', '203.0.113.10']]);
      const dump = run('fail2ban-client', ['-c', dir, '-d']).out;
      expect(dump).toContain("['set', 'docker-auth', 'addignoreip', '127.0.0.1/8', '::1', '10.0.0.2']");
      expect(dump).toContain("['set', 'sshd', 'addignoreip', '127.0.0.1/8', '::1', '10.0.0.2']");
      // A malformed address installs nothing.
      expect(run('bash', ['-c', stubbed.replace('harden_fail2ban 10.0.0.2', 'harden_fail2ban "10.0.0.2 -x"'), 'stub', at('deploy/servers/common/harden.sh')], { env: { PATH: process.env.PATH, D: dir } }).code).toBe(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(fs.readFileSync(at('deploy/servers/workspace/bootstrap.sh'), 'utf8')).toMatch(/^harden_fail2ban "\$PLATFORM_PRIVATE_IP"$/m);
  });
});

describe('deploy/: private keys reach servers over SSH, never through cloud-init (issue 17, finding 4)', () => {
  const PEM = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-deliver-'));
    const make = at('deploy/certs/make-certs.sh');
    execFileSync('bash', [make, 'ca', dir]);
    execFileSync('bash', [make, 'server', dir, 'ws1', 'IP:10.0.0.5']);
    for (const who of ['api', 'worker']) execFileSync('bash', [make, 'client', dir, who]);
    fs.mkdirSync(path.join(dir, 'origin'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, 'origin/key.pem'), '-out', path.join(dir, 'origin/cert.pem'), '-subj', '/CN=*.podex.dev', '-days', '2'], { stdio: 'ignore' });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Every private key in a text: in clear, or inside any base64 run (cloud-init's b64, gz+b64). */
  const privateKeysIn = (text: string): string[] => {
    const found = PEM.test(text) ? ['clear'] : [];
    for (const [run64] of text.matchAll(/[A-Za-z0-9+/]{40,}={0,2}/g)) {
      const bytes = Buffer.from(run64, 'base64');
      let decoded = bytes.toString('latin1');
      try {
        decoded += zlib.gunzipSync(bytes).toString('latin1');
      } catch {
        // not gzip
      }
      if (PEM.test(decoded) || privateKeysIn(decoded.replace(/\s+/g, '')).length > 0) found.push(`base64 ${run64.slice(0, 16)}…`);
    }
    return found;
  };

  it('no cloud-init file carries a private key, in clear, in base64 or as a placeholder an operator fills with one', () => {
    const inits = files(at('deploy'), (f) => /cloud-init[^/]*\.ya?ml$/.test(path.basename(f)));
    expect(inits.length).toBeGreaterThanOrEqual(2);
    const key = fs.readFileSync(path.join(dir, 'ws1/key.pem'), 'utf8');
    // The scan itself finds a key in every form cloud-init takes one.
    expect(privateKeysIn(key)).toEqual(['clear']);
    expect(privateKeysIn(Buffer.from(key).toString('base64'))).toHaveLength(1);
    expect(privateKeysIn(zlib.gzipSync(key).toString('base64'))).toHaveLength(1);
    for (const f of inits) {
      const text = fs.readFileSync(f, 'utf8');
      // Rendered as the header says (each ${...} replaced), a placeholder named for a key gets one.
      const rendered = text.replace(/\$\{([A-Z0-9_]+)\}/g, (_, name: string) => (!/KEY/.test(name) ? 'x' : /B64$/.test(name) ? Buffer.from(key).toString('base64') : JSON.stringify(key)));
      expect([path.relative(ROOT, f), privateKeysIn(text), privateKeysIn(rendered)]).toEqual([path.relative(ROOT, f), [], []]);
      const doc = YAML.parse(text) as { write_files?: { path: string }[] };
      expect((doc.write_files ?? []).map((w) => w.path).filter((p) => /key|\.pem$|\.key$/i.test(p))).toEqual([]);
    }
  });

  const deliver = (...args: string[]) => run('bash', [at('deploy/servers/deliver-certs.sh'), '--dry-run', ...args]);
  /** The install lines of the dry run's last remote script (after the copies), in order. */
  const installs = (out: string) =>
    out
      .slice(out.lastIndexOf('+ scp '))
      .split('\n')
      .filter((l) => l.startsWith('install '));

  it('the workspace delivery copies the server’s files with scp into a private folder and installs them where daemon.json reads them, the key 0600 root’s and last, then restarts Docker', () => {
    const r = deliver('workspace', 'root@203.0.113.9', path.join(dir, 'ws1'));
    expect(r.code).toBe(0);
    expect(r.out).not.toMatch(PEM);
    const stage = '/root/podex-certs.incoming';
    expect(r.out).toContain(`+ ssh root@203.0.113.9 sh -eu <<EOF\nrm -rf ${stage}\ninstall -d -m 0700 -o root -g root ${stage}\nEOF\n`);
    for (const [from, to] of [['ca.pem', 'ca.pem'], ['cert.pem', 'server-cert.pem'], ['key.pem', 'server-key.pem']]) {
      expect(r.out.split('\n')).toContain(`+ scp -q ${path.join(dir, 'ws1', from)} root@203.0.113.9:${stage}/${to}`);
    }
    const daemon = JSON.parse(fs.readFileSync(at('deploy/servers/workspace/daemon.json'), 'utf8')) as Record<string, string>;
    expect(installs(r.out)).toEqual([
      `install -d -m 0755 -o root -g root ${path.dirname(daemon.tlskey)}`,
      `install -m 0644 -o root -g root ${stage}/ca.pem ${daemon.tlscacert}`,
      `install -m 0644 -o root -g root ${stage}/server-cert.pem ${daemon.tlscert}`,
      `install -m 0600 -o root -g root ${stage}/server-key.pem ${daemon.tlskey}`,
    ]);
    const tail = r.out.slice(r.out.lastIndexOf(installs(r.out).at(-1)!));
    expect(tail).toMatch(new RegExp(`\\nrm -rf ${stage}\\nif systemctl is-active --quiet docker; then systemctl restart docker; fi\\nEOF\\n`));
    // Checked before anything is sent: a client certificate is no server's, a key must open its certificate.
    expect(deliver('workspace', 'root@203.0.113.9', path.join(dir, 'api'))).toEqual({ code: 2, out: expect.not.stringMatching(/^\+ /m) });
    const mixed = fs.mkdtempSync(path.join(dir, 'mixed-'));
    for (const f of ['ca.pem', 'cert.pem']) fs.copyFileSync(path.join(dir, 'ws1', f), path.join(mixed, f));
    fs.copyFileSync(path.join(dir, 'api/key.pem'), path.join(mixed, 'key.pem'));
    expect(deliver('workspace', 'root@203.0.113.9', mixed)).toEqual({ code: 2, out: expect.stringMatching(/is not the key of/) });
    expect(deliver('workspace', 'root@h;id', path.join(dir, 'ws1')).code).toBe(2);
    expect(run('shellcheck', ['-x', at('deploy/servers/deliver-certs.sh')])).toEqual({ code: 0, out: '' });
  });

  it('the platform delivery installs the origin key 0600 and each process’s client key group 10001 where the compose file mounts them', () => {
    const r = deliver('platform', 'root@203.0.113.8', path.join(dir, 'origin'), dir);
    expect(r.code).toBe(0);
    expect(r.out).not.toMatch(PEM);
    const stage = '/root/podex-certs.incoming';
    const lines = installs(r.out);
    for (const who of ['api', 'worker']) {
      expect(fs.readFileSync(at('deploy/coolify/docker-compose.yml'), 'utf8')).toContain(`\${PODEX_CERT_DIR:-/etc/podex/certs}/${who}:/run/podex-certs:ro`);
      expect(lines).toEqual(
        expect.arrayContaining([
          `install -d -m 0750 -o root -g 10001 /etc/podex/certs/${who}`,
          `install -m 0644 -o root -g root ${stage}/${who}-ca.pem /etc/podex/certs/${who}/ca.pem`,
          `install -m 0644 -o root -g root ${stage}/${who}-cert.pem /etc/podex/certs/${who}/cert.pem`,
          `install -m 0640 -o root -g 10001 ${stage}/${who}-key.pem /etc/podex/certs/${who}/key.pem`,
        ]),
      );
      expect(r.out.split('\n')).toContain(`+ scp -q ${path.join(dir, who, 'key.pem')} root@203.0.113.8:${stage}/${who}-key.pem`);
    }
    expect(lines[0]).toBe('install -d -m 0700 -o root -g root /etc/podex /etc/podex/certs');
    // The origin key last: the platform bootstrap waits for it.
    expect(lines.slice(-2)).toEqual([`install -m 0644 -o root -g root ${stage}/origin-cert.pem /etc/podex-origin/cert.pem`, `install -m 0600 -o root -g root ${stage}/origin-key.pem /etc/podex-origin/key.pem`]);
    expect(r.out).toMatch(new RegExp(`\\nrm -rf ${stage}\\nEOF\\n$`));
    expect(deliver('platform', 'root@203.0.113.8', path.join(dir, 'origin'), path.join(dir, 'ws1')).code).toBe(2);
  });

  it('each bootstrap waits for the delivered key before the firewall closes SSH, then stops naming the delivery script', () => {
    const harden = at('deploy/servers/common/harden.sh');
    const file = path.join(dir, 'late-key.pem');
    const missing = run('bash', ['-c', 'source "$1"; wait_for_files 0 "deliver it" "$2"; echo passed', 'stub', harden, file]);
    expect(missing).toEqual({ code: 2, out: `[podex-bootstrap] missing ${file}: deliver it\n` });
    const late = run('bash', ['-c', 'exec 2>&1; (sleep 1; echo k >"$2") & source "$1"; wait_for_files 30 "deliver it" "$2"; echo passed', 'stub', harden, file]);
    expect(late).toEqual({ code: 0, out: `[podex-bootstrap] waiting for ${file}: deliver it\npassed\n` });
    const daemon = JSON.parse(fs.readFileSync(at('deploy/servers/workspace/daemon.json'), 'utf8')) as Record<string, string>;
    for (const role of ['workspace', 'platform']) {
      const script = fs.readFileSync(at(`deploy/servers/${role}/bootstrap.sh`), 'utf8');
      const wait = script.search(/^wait_for_files "\$\{CERT_WAIT_SECONDS:-0\}" "[^"]*deploy\/servers\/deliver-certs\.sh /m);
      expect([role, wait]).toEqual([role, expect.any(Number)]);
      expect(wait).toBeGreaterThan(0);
      expect(wait).toBeLessThan(script.indexOf('ufw --force enable'));
      expect(YAML.parse(fs.readFileSync(at(`deploy/servers/${role}/cloud-init.yaml`), 'utf8')).write_files[0].content).toMatch(/^CERT_WAIT_SECONDS=\d{3,}$/m);
    }
    // The workspace waits for the very files Docker reads.
    const ws = fs.readFileSync(at('deploy/servers/workspace/bootstrap.sh'), 'utf8');
    const stubbed = `here=${at('deploy/servers/workspace')}; ${ws.match(/^tls=\(\);.*$/m)![0]}; printf '%s\\n' "\${tls[@]}"`;
    expect(run('bash', ['-c', stubbed]).out.trim().split('\n')).toEqual([daemon.tlscacert, daemon.tlscert, daemon.tlskey]);
    expect(ws).toMatch(/^wait_for_files [^\n]* "\$\{tls\[@\]\}"$/m);
  });
});

describe('metrics endpoints', () => {
  let h: Harness;
  let worker: ChildProcess | undefined;
  beforeAll(async () => {
    h = await startHarness('metrics');
  });
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await h.close();
  });

  it('the API and the worker serve Prometheus metrics that promtool accepts', async () => {
    await h.call('GET', '/servers');
    // /metrics on the API's port is for admins (Prometheus scrapes METRICS_ADDRESS).
    const asAdmin = { headers: { authorization: `Bearer ${h.adminToken}` } };
    const api = await (await fetch(`${h.url}/metrics`, asAdmin)).text();
    const apiCheck = run('promtool', ['check', 'metrics'], { input: api });
    expect(apiCheck.out).not.toMatch(/error/i);
    expect(api).toMatch(/^podex_http_request_duration_seconds_bucket\{.*route="\/servers".*\} \d+/m);
    expect(api).toMatch(/^podex_servers\{status="[a-z]+"\} \d+/m);
    expect(api).toMatch(/^podex_migrations_in_flight \d+/m);
    expect(api).toMatch(/^podex_fleet_capacity\{resource="cpu_cores",kind="reserved"\} [\d.]+/m);
    expect(api).toMatch(/^podex_backup_failures_total \d+/m);

    const port = 19500 + Math.floor(Math.random() * 400);
    const queue = uniq('metrics');
    worker = await spawnWorker(queue, { WORKER_METRICS_ADDRESS: `127.0.0.1:${port}`, OPENROUTER_API_KEY: '' });
    // One workflow with one activity, so the per-type series exist.
    // Started through a client that counts starts, as the API process's client does.
    const counting = new Client({ connection: h.client.connection, namespace: h.client.options.namespace, interceptors: { workflow: [countWorkflowStarts] }, dataConverter: temporalDataConverter(config()) });
    await counting.workflow.execute(syncModelPricesWorkflow, { taskQueue: queue, workflowId: uniq('metrics-wf') });
    expect(await (await fetch(`${h.url}/metrics`, asAdmin)).text()).toMatch(/^podex_workflows_started_total\{workflow_type="syncModelPricesWorkflow"\} [1-9]/m);
    const text = await eventually(async () => {
      const t = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return /temporal_workflow_completed_total\{[^}]*workflow_type="syncModelPricesWorkflow"/.test(t) ? t : undefined;
    }, 20_000);
    const workerCheck = run('promtool', ['check', 'metrics'], { input: text });
    expect(workerCheck.out).not.toMatch(/error/i);
    expect(text).toMatch(/^temporal_activity_execution_latency_bucket\{[^}]*activity_type="syncModelPrices"/m);
  });
});
