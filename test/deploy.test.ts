import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { checkDaemonJson } from '../domain/hardening';
import { Client } from '@temporalio/client';
import { countWorkflowStarts } from '../api/metrics';
import { syncModelPricesWorkflow } from '../workflows';
import { eventually, startHarness, type Harness } from './harness';
import { spawnWorker, uniq } from './helpers';

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
    const env = { PATH: process.env.PATH, POSTGRES_PASSWORD: 'p', REDIS_PASSWORD: 'r', JWT_SECRET_KEY: 'j', INTERNAL_API_KEY: 'i', LLM_KEYS_ENCRYPTION_KEY: 'k', GRAFANA_ADMIN_PASSWORD: 'g' };
    const ok = run('docker-compose', ['-f', file, 'config'], { env });
    expect(ok.code).toBe(0);
    const resolved = YAML.parse(ok.out) as { services: Record<string, { environment?: Record<string, string>; user?: string }> };
    expect(Object.keys(resolved.services).sort()).toEqual(
      ['api', 'cadvisor', 'grafana', 'loki', 'node-exporter', 'postgres', 'prometheus', 'promtail', 'redis', 'temporal', 'temporal-ui', 'uptime-kuma', 'worker'].sort(),
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

  it('the images build in stages and run as an unprivileged user, with api and worker targets and no secrets', () => {
    const df = fs.readFileSync(at('deploy/docker/Dockerfile'), 'utf8');
    const stages = [...df.matchAll(/^FROM\s+\S+(?:\s+AS\s+(\S+))?/gim)].map((m) => m[1]);
    expect(stages).toEqual(['build', 'runtime', 'api', 'worker']);
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
    const api = await (await fetch(`${h.url}/metrics`)).text();
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
    const counting = new Client({ connection: h.client.connection, namespace: h.client.options.namespace, interceptors: { workflow: [countWorkflowStarts] } });
    await counting.workflow.execute(syncModelPricesWorkflow, { taskQueue: queue, workflowId: uniq('metrics-wf') });
    expect(await (await fetch(`${h.url}/metrics`)).text()).toMatch(/^podex_workflows_started_total\{workflow_type="syncModelPricesWorkflow"\} [1-9]/m);
    const text = await eventually(async () => {
      const t = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return /temporal_workflow_completed_total\{[^}]*workflow_type="syncModelPricesWorkflow"/.test(t) ? t : undefined;
    }, 20_000);
    const workerCheck = run('promtool', ['check', 'metrics'], { input: text });
    expect(workerCheck.out).not.toMatch(/error/i);
    expect(text).toMatch(/^temporal_activity_execution_latency_bucket\{[^}]*activity_type="syncModelPrices"/m);
  });
});
