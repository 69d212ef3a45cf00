import { execFileSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.join(__dirname, '..');
const SCRIPT = `const { createLogger } = require('./lib/logger'); createLogger('info').child({ component: 'api' }).info({ port: 8080, token: 'tok-secret' }, 'api listening');`;

/** What a process using createLogger writes, with stdout a pipe or (through script(1)) a real terminal. */
function logged(stdout: 'pipe' | 'tty', logFormat?: string): string {
  const env = { ...process.env, LOG_FORMAT: logFormat };
  if (logFormat === undefined) delete env.LOG_FORMAT;
  const node = [process.execPath, '--import', 'tsx', '-e', SCRIPT];
  if (stdout === 'pipe') return execFileSync(node[0], node.slice(1), { cwd: ROOT, env, encoding: 'utf8' });
  const command = node.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return execFileSync('script', ['-qec', command, '/dev/null'], { cwd: ROOT, env, encoding: 'utf8' });
}

describe('createLogger', () => {
  it('writes JSON lines into a pipe', () => {
    const line = JSON.parse(logged('pipe').trim());
    expect(line).toMatchObject({ level: 30, component: 'api', port: 8080, token: '[redacted]', msg: 'api listening' });
  });

  it('writes pretty lines on a terminal, secrets still redacted', () => {
    const out = logged('tty');
    expect(out).toMatch(/INFO.*api: api listening/);
    expect(out).toMatch(/port.*: 8080/);
    expect(out).toContain('[redacted]');
    expect(out).not.toContain('tok-secret');
    expect(out).not.toContain('"msg"');
  });

  it('writes JSON on a terminal when LOG_FORMAT=json, and pretty into a pipe when LOG_FORMAT=pretty', () => {
    expect(JSON.parse(logged('tty', 'json').trim())).toMatchObject({ msg: 'api listening' });
    expect(logged('pipe', 'pretty')).toMatch(/INFO.*api: api listening/);
  });
});
