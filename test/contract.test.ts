import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Finding } from './contract-run';

/**
 * The OpenAPI document is the truth: schemathesis sends every operation of /openapi.json
 * generated requests (valid and invalid) and checks every answer — no 5xx, and each body matches
 * the document's schema for its status. The run (test/contract-run.ts) has a private API instance
 * on its own PostgreSQL, Redis and Temporal, inside a network namespace with only loopback
 * (`unshare --net`): generated hosts and URLs cannot send a packet anywhere else.
 */

/** Stack start (about 10 s), the 60 s schemathesis budget, tear-down; the child is killed past this. */
const HARD_TIMEOUT_MS = 150_000;

interface RunResult {
  findings?: Finding[];
  seconds?: number;
  apiLog?: string;
  error?: string;
}

function runContract(): Promise<{ result: RunResult; stderr: string }> {
  const child = spawn('unshare', ['--net', process.execPath, '--import', 'tsx', path.join(__dirname, 'contract-run.ts')], {
    cwd: path.join(__dirname, '..'),
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-20_000)));
  const timer = setTimeout(() => child.kill('SIGKILL'), HARD_TIMEOUT_MS);
  return new Promise((resolve) =>
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').pop() ?? '';
      let result: RunResult;
      try {
        result = JSON.parse(last) as RunResult;
      } catch {
        result = { error: `the contract run ended (${signal ?? `exit ${code}`}) without a result:\n${stdout.slice(-4000)}` };
      }
      resolve({ result, stderr });
    }),
  );
}

const shown = (f: Finding) => `[${f.role}] ${f.operation} — ${f.check}: ${f.title}\n${f.message.slice(0, 1500)}${f.reproduce ? `\nreproduce: ${f.reproduce}` : ''}`;

describe('the API keeps the contract its OpenAPI document states', () => {
  it('answers every operation as documented, as an admin and as a user, with no 5xx', async () => {
    const { result, stderr } = await runContract();
    if (result.error) throw new Error(`${result.error}\n${stderr}`);
    const findings = result.findings ?? [];
    if (findings.length) process.stderr.write(`API log (last lines):\n${result.apiLog}\n`);
    expect(findings.map(shown)).toEqual([]);
  }, HARD_TIMEOUT_MS + 10_000);
});
