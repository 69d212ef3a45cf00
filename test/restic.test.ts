import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, ent.name);
      const rel = path.relative(root, p);
      if (ent.isDirectory()) walk(p);
      else if (ent.isSymbolicLink()) out[rel] = `link:${fs.readlinkSync(p)}`;
      else out[rel] = `${(fs.statSync(p).mode & 0o777).toString(8)}:${createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
    }
  };
  walk(root);
  return out;
}

describe('restic', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-restic-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('init, backup and restore round-trip a directory byte for byte', async () => {
    const src = path.join(dir, 'src');
    fs.mkdirSync(path.join(src, 'nested', 'deeper'), { recursive: true });
    fs.writeFileSync(path.join(src, 'hello.txt'), 'hello workspace\n');
    fs.writeFileSync(path.join(src, 'nested', 'random.bin'), randomBytes(3 * 1024 * 1024 + 17));
    fs.writeFileSync(path.join(src, 'nested', 'deeper', 'script.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    fs.writeFileSync(path.join(src, 'empty'), '');
    fs.symlinkSync('hello.txt', path.join(src, 'link'));

    const pw = path.join(dir, 'password');
    fs.writeFileSync(pw, randomBytes(24).toString('hex'), { mode: 0o600 });
    const env = { ...process.env, RESTIC_REPOSITORY: path.join(dir, 'repo'), RESTIC_PASSWORD_FILE: pw, RESTIC_CACHE_DIR: path.join(dir, 'cache') };

    await run('restic', ['init'], { env });
    const backup = await run('restic', ['backup', '--json', '--tag', 'podex-test', '.'], { env, cwd: src });
    const summary = backup.stdout.trim().split('\n').map((l) => JSON.parse(l)).find((m) => m.message_type === 'summary');
    expect(summary.snapshot_id).toMatch(/^[0-9a-f]{8,}/);
    // Four regular files; restic stores the symlink as a node but does not count it as a file.
    expect(summary.total_files_processed).toBe(4);

    const dst = path.join(dir, 'restored');
    await run('restic', ['restore', summary.snapshot_id, '--target', dst], { env });
    expect(tree(dst)).toEqual(tree(src));

    // The repository is encrypted: a wrong password opens nothing.
    fs.writeFileSync(pw, 'wrong');
    await expect(run('restic', ['snapshots'], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/wrong password|no key found/i) });
  });
});
