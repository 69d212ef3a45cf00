/**
 * The contract run behind test/contract.test.ts: a private API instance (its own PostgreSQL,
 * Redis and Temporal dev server, a task queue no worker polls, rate limits raised, the LLM and
 * Cloudflare SDKs pointed at our local fakes), then schemathesis over every operation of its
 * /openapi.json with the checks not_a_server_error and response_schema_conformance, as an admin
 * and as a user. Prints one JSON line: the findings (empty when the API kept its contract).
 *
 * Network: the test starts this script in a network namespace of its own that has only a
 * loopback interface (`unshare --net`), so everything here — the API, its database, Redis,
 * Temporal, the fakes and schemathesis — can reach 127.0.0.1 and nothing else: whatever a
 * generated host, address or URL names, no packet can leave the machine. The hooks
 * (test/contract_hooks.py) also keep those fields on loopback, so the data stays representative.
 *
 * Usage (root, from the repository): unshare --net node --import tsx test/contract-run.ts
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { mintToken } from '../api/auth';
import { MODELS } from '../domain/llm';
import { createPrisma } from '../lib/prisma';
import { FakeCloudflare } from './fake-cloudflare';
import { FakeOpenAi } from './fake-openai';
import { startPrivateApi, startPrivateStack, type PrivateApi, type PrivateStack } from './private-stack';

const ROOT = path.join(__dirname, '..');
const SCHEMATHESIS = process.env.SCHEMATHESIS_BIN ?? path.join(ROOT, '.stack', 'venv', 'bin', 'schemathesis');
/** Generated test cases per operation in each fuzzing round. */
const MAX_EXAMPLES = Number(process.env.CONTRACT_MAX_EXAMPLES ?? 10);
/** The whole schemathesis budget (both roles run at once): a run still going past it is killed, and that fails the test. */
const BUDGET_MS = Number(process.env.CONTRACT_BUDGET_MS ?? 60_000);
/**
 * Schemathesis's own time limit (--max-time), inside the budget: it shares the time out between its
 * phases and stops starting cases once it is spent, so a loaded machine tests less rather than
 * failing; on a fast one, fuzzing goes on with new cases until then. The rest of the budget is
 * for the cases in flight (each within the 10 s request timeout) and the report.
 */
const MAX_TIME_S = Math.floor((BUDGET_MS - 15_000) / 1000);
const run = promisify(execFile);

export interface Finding {
  role: string;
  operation: string;
  check: string;
  title: string;
  message: string;
  /** How to send the failing request again (schemathesis's curl line). */
  reproduce?: string;
}

/** This process must be alone on loopback: refuse to run where another interface could carry a packet out. */
function assertLoopbackOnly(): void {
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  const links = execFileSync('ip', ['-o', 'link', 'show']).toString().trim().split('\n');
  const others = links.map((l) => l.split(':')[1]?.trim()).filter((name) => name && name !== 'lo');
  if (others.length) throw new Error(`refusing to run: this network namespace has interfaces besides loopback (${others.join(', ')}); start it with unshare --net`);
}

/** Fakes for every remote service the API's SDKs talk to (OpenRouter, OpenAI, Anthropic, Ollama, Cloudflare). */
async function startFakes() {
  const openrouterKey = `sk-or-${randomBytes(8).toString('hex')}`;
  const openrouter = new FakeOpenAi('openrouter', MODELS.map((m) => ({ id: m.openrouter, pricing: { prompt: '0.000001', completion: '0.000002' } })), openrouterKey);
  const openai = new FakeOpenAi('openai', MODELS.filter((m) => m.openai).map((m) => ({ id: m.openai! })));
  const anthropic = new FakeOpenAi('anthropic', MODELS.filter((m) => m.anthropic).map((m) => ({ id: m.anthropic! })));
  const ollama = new FakeOpenAi('ollama', MODELS.filter((m) => m.ollama).map((m) => ({ id: m.ollama! })));
  const cloudflare = new FakeCloudflare();
  await Promise.all([openrouter.start('/api/v1'), openai.start(), anthropic.start(), ollama.start('')]);
  await cloudflare.start();
  return { openrouter, openrouterKey, openai, anthropic, ollama, cloudflare, close: () => Promise.allSettled([openrouter, openai, anthropic, ollama].map((f) => f.stop()).concat(cloudflare.stop())) };
}

/** An empty restic repository of the run's own, so the backup routes answer from a real one. */
async function resticRepository(dir: string): Promise<{ repository: string; passwordFile: string }> {
  const repository = path.join(dir, 'restic');
  const passwordFile = path.join(dir, 'restic-password');
  fs.writeFileSync(passwordFile, randomBytes(16).toString('hex'), { mode: 0o600 });
  await run('restic', ['init', '--repo', repository, '--password-file', passwordFile], { env: { ...process.env, RESTIC_CACHE_DIR: path.join(dir, 'restic-cache') } });
  return { repository, passwordFile };
}

/** A server in service with room to spare, so workspaces can be placed (the engine address is loopback; no worker dials it). */
async function seed(stack: PrivateStack): Promise<void> {
  const prisma = createPrisma(stack.databaseUrl, 1);
  try {
    await prisma.workspaceServer.create({
      data: {
        name: 'contract',
        hostname: 'contract.localhost',
        ipAddress: '127.0.0.1',
        dockerPort: 9,
        status: 'active',
        architecture: 'amd64',
        totalCpu: 4096,
        totalMemoryMb: 1_000_000_000,
        totalDiskGb: 1_000_000_000,
        hostCpus: 2,
        lastHeartbeat: new Date(),
      },
    });
  } finally {
    await prisma.$disconnect();
  }
}

/** One schemathesis run; resolves with its findings read from the NDJSON report. */
async function schemathesis(api: PrivateApi, role: string, token: string, maxTimeS: number, args: string[], env: NodeJS.ProcessEnv, dir: string, deadline: number): Promise<Finding[]> {
  const report = path.join(dir, `${role}.ndjson`);
  const child = spawn(
    SCHEMATHESIS,
    [
      '--config-file', path.join(__dirname, 'contract-schemathesis.toml'),
      'run', `${api.url}/openapi.json`,
      '--checks', 'not_a_server_error,response_schema_conformance',
      '--max-examples', String(MAX_EXAMPLES),
      '--max-time', String(maxTimeS),
      '-H', `Authorization: Bearer ${token}`,
      '--report', 'ndjson', '--report-ndjson-path', report,
      '--generation-database', 'none',
      '--no-color',
      // A developer can focus the run on one operation: CONTRACT_INCLUDE='POST /servers'.
      ...(process.env.CONTRACT_INCLUDE ? ['--include-name', process.env.CONTRACT_INCLUDE] : []),
      ...args,
    ],
    { cwd: dir, env: { ...env, PYTHONPATH: __dirname, PYTHONDONTWRITEBYTECODE: '1', SCHEMATHESIS_HOOKS: 'contract_hooks' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  if (process.env.CONTRACT_VERBOSE) child.stdout.pipe(process.stderr);
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), Math.max(1, deadline - Date.now()));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(timer);
  fs.writeFileSync(path.join(dir, `${role}.log`), out);
  // The report is written as the run goes: a run cut short still lists what it found.
  const findings = fs.existsSync(report) ? findingsOf(fs.readFileSync(report, 'utf8'), role) : [];
  if (code === null) return [...findings, { role, operation: '*', check: 'budget', title: `schemathesis did not finish within the ${BUDGET_MS / 1000} s budget`, message: out.slice(-4000) }];
  // Exit 0: no finding; 1: findings (listed above); anything else, or 1 with none read, is a failed run
  // (but for a role whose operations a developer's CONTRACT_INCLUDE left out).
  if (code !== 0 && findings.length === 0 && !/No operations matched the filters/.test(out)) findings.push({ role, operation: '*', check: 'run', title: `schemathesis exited with ${code}`, message: out.slice(-4000) });
  return findings;
}

/** Every failed check and every error (a timeout, a schema schemathesis could not use) in a schemathesis NDJSON report, once each. */
export function findingsOf(ndjson: string, role: string): Finding[] {
  const out = new Map<string, Finding>();
  for (const line of ndjson.split('\n')) {
    if (!line.trim()) continue;
    let event: Record<string, Record<string, unknown>>;
    try {
      event = JSON.parse(line) as Record<string, Record<string, unknown>>;
    } catch {
      continue; // the last line of a run that was cut short
    }
    const [kind, v] = Object.entries(event)[0];
    if (kind === 'NonFatalError' || kind === 'FatalError') {
      const value = (v.value ?? {}) as { type?: string; message?: string };
      const f = { role, operation: String(v.label ?? '*'), check: 'error', title: value.type ?? kind, message: value.message ?? JSON.stringify(v) };
      out.set(`${f.operation}|${f.title}|${f.message}`, f);
      continue;
    }
    if (kind !== 'ScenarioFinished') continue;
    const recorder = (v.recorder ?? {}) as { label?: string; checks?: Record<string, { name: string; status: string; failure_info?: { failure?: { title?: string; message?: string }; code?: string } }[]> };
    for (const checks of Object.values(recorder.checks ?? {})) {
      for (const c of checks) {
        if (c.status !== 'failure') continue;
        const failure = c.failure_info?.failure ?? {};
        const f = { role, operation: String(recorder.label ?? v.label ?? '*'), check: c.name, title: failure.title ?? 'failed', message: failure.message ?? '', reproduce: c.failure_info?.code };
        out.set(`${f.operation}|${f.check}|${f.title}|${f.message}`, f);
      }
    }
  }
  return [...out.values()];
}

async function main(): Promise<void> {
  assertLoopbackOnly();
  if (!fs.existsSync(SCHEMATHESIS)) throw new Error(`${SCHEMATHESIS} is missing: deploy/local/setup.sh installs schemathesis into .stack/venv`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-contract-'));
  const fakes = await startFakes();
  let stack: PrivateStack | undefined;
  let api: PrivateApi | undefined;
  try {
    stack = await startPrivateStack();
    const [restic] = await Promise.all([resticRepository(dir), seed(stack)]);
    const jwtSecret = randomBytes(32).toString('hex');
    const closedUrl = 'http://127.0.0.1:9/';
    api = await startPrivateApi(stack, {
      JWT_SECRET_KEY: jwtSecret,
      INTERNAL_API_KEY: randomBytes(24).toString('hex'),
      LLM_KEYS_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      LOG_LEVEL: 'warn',
      OPENROUTER_API_KEY: fakes.openrouterKey,
      OPENROUTER_BASE_URL: fakes.openrouter.url,
      OPENAI_BASE_URL: fakes.openai.url,
      ANTHROPIC_BASE_URL: `${fakes.anthropic.url}/`,
      // Users' Ollama URLs: the hooks point them at the fake, which this allows (plain http on loopback).
      LLM_PROVIDER_ALLOW: '127.0.0.1',
      LLM_UPSTREAM_RETRIES: '0',
      LLM_UPSTREAM_TIMEOUT_MS: '5000',
      CLOUDFLARE_BASE_URL: fakes.cloudflare.url,
      CLOUDFLARE_API_TOKEN: `cf-${randomBytes(8).toString('hex')}`,
      RESTIC_REPOSITORY: restic.repository,
      RESTIC_PASSWORD_FILE: restic.passwordFile,
      RESTIC_CACHE_DIR: path.join(dir, 'restic-cache'),
      WORKSPACE_SIGN_IN_URL: 'http://127.0.0.1:9/sign-in',
    });
    const env = { PATH: process.env.PATH, HOME: dir, CONTRACT_OLLAMA_URL: fakes.ollama.url, CONTRACT_CLOSED_URL: closedUrl };
    const [admin, user] = [`contract-admin-${randomUUID().slice(0, 8)}`, `contract-user-${randomUUID().slice(0, 8)}`];
    const [adminToken, userToken] = await Promise.all([mintToken(jwtSecret, admin, 'admin'), mintToken(jwtSecret, user, 'user')]);
    // Credit for both, so a completion can get as far as the (fake) provider and its answer is checked too.
    for (const who of [admin, user]) {
      const res = await fetch(`${api.url}/credits/${who}`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json', 'idempotency-key': randomUUID() }, body: JSON.stringify({ addUsd: '1000' }) });
      if (res.status !== 200) throw new Error(`topping up ${who} answered ${res.status}: ${await res.text()}`);
    }
    const deadline = Date.now() + BUDGET_MS;
    const started = Date.now();
    // Both roles at once, each with schemathesis's phases shared between them: the admin over every
    // operation, the document's examples, boundary cases (coverage) and generated ones (fuzzing); a user over the operations
    // users may call, generated cases and sequences that follow links (stateful), which is where a
    // user's own resources come into play (the boundary cases do not depend on the role).
    // One schemathesis worker each: with --workers 2 its generator threads hit a CPython 3.11 fault
    // (SystemError: AST constructor recursion depth mismatch, from Hypothesis describing a lambda).
    const [asAdmin, asUser] = await Promise.all([
      schemathesis(api, 'admin', adminToken, MAX_TIME_S, ['--phases', 'examples,coverage,fuzzing'], env, dir, deadline),
      // Half the time: then the admin's run has the machine to itself.
      schemathesis(api, 'user', userToken, Math.ceil(MAX_TIME_S / 2), ['--exclude-tag', 'admin', '--phases', 'fuzzing,stateful'], env, dir, deadline),
    ]);
    const findings = [...asAdmin, ...asUser];
    process.stdout.write(`${JSON.stringify({ findings, seconds: Math.round((Date.now() - started) / 100) / 10, apiLog: findings.length ? api.logs().slice(-20_000) : '' })}\n`);
  } finally {
    await api?.close();
    await stack?.close();
    await fakes.close();
    if (process.env.CONTRACT_KEEP_DIR) fs.cpSync(dir, process.env.CONTRACT_KEEP_DIR, { recursive: true });
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: Error) => {
      process.stdout.write(`${JSON.stringify({ error: err.stack ?? err.message })}\n`);
      process.exit(2);
    },
  );
}
