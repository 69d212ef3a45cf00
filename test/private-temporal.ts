import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SEARCH_ATTRIBUTES } from '../lib/constants';

const BIN = path.join(__dirname, '..', '.stack', 'bin', 'temporal');

/**
 * A Temporal dev server of the test's own (the stack's binary, its own SQLite file and
 * ports on 127.0.0.1), for a test that restarts the server: restarting the shared one would
 * break every other suite running at the same time.
 */
export async function startPrivateTemporal(opts: { parentDir?: string } = {}) {
  const dir = fs.mkdtempSync(path.join(opts.parentDir ?? os.tmpdir(), 'podex-temporal-'));
  const port = 21000 + Math.floor(Math.random() * 4000);
  const address = `127.0.0.1:${port}`;
  let child: ChildProcess | undefined;

  const up = async () => {
    // setpriv: the server dies with the test process, even one killed before its clean-up ran.
    child = spawn(
      'setpriv',
      [
        '--pdeathsig', 'SIGKILL', BIN,
        'server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--http-port', String(port + 1), '--metrics-port', String(port + 2),
        '--headless', '--db-filename', path.join(dir, 'temporal.db'), '--log-level', 'error',
        '--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal',
        ...SEARCH_ATTRIBUTES.flatMap((a) => ['--search-attribute', `${a.name}=Keyword`]),
      ],
      { stdio: 'ignore' },
    );
    for (let i = 0; ; i++) {
      try {
        execFileSync(BIN, ['operator', 'namespace', 'describe', '-n', 'default', '--address', address], { stdio: 'ignore' });
        return;
      } catch {
        if (i > 150) throw new Error('private Temporal server did not come up');
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  const down = async () => {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  };

  await up();
  return {
    address,
    /** Stops the server and starts it again on the same database, as an operator's restart would. */
    async restart() {
      await down();
      await up();
    },
    /** Stops the server, keeping its database (an outage); `start` brings it back. */
    halt: down,
    /** Starts a halted server again on the same database and ports. */
    start: up,
    async stop() {
      await down();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
