import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { Container, Exec } from 'dockerode';

/** Splits Docker's multiplexed stdout/stderr stream (non-TTY containers and execs). */
export function demuxStreams(buf: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  for (let i = 0; i + 8 <= buf.length; ) {
    const len = buf.readUInt32BE(i + 4);
    (buf[i] === 2 ? err : out).push(buf.subarray(i + 8, i + 8 + len));
    i += 8 + len;
  }
  return { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** The multiplexed stream as one text, stdout then stderr. */
export function demux(buf: Buffer): string {
  const { stdout, stderr } = demuxStreams(buf);
  return stdout + stderr;
}

/** Runs a command in a running container through the Docker API; returns its exit code and output. */
export async function execIn(container: Container, cmd: string[]): Promise<{ code: number; out: string; stdout: string; stderr: string }> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const { ExitCode } = await exec.inspect();
  const { stdout, stderr } = demuxStreams(Buffer.concat(chunks));
  return { code: ExitCode ?? -1, out: stdout + stderr, stdout, stderr };
}

/**
 * Every process started by an API exec or terminal carries `PODEX_EXEC=<id>` in its
 * environment (children inherit it), so it can be found and killed: Docker has no API
 * to kill an exec.
 */
export const EXEC_MARKER = 'PODEX_EXEC';
const KILL_TIMEOUT_MS = 10_000;

/**
 * A shell script that stops, then kills, every process marked with `id` and every
 * descendant of one (found through each process's parent in /proc, so a child that
 * cleared its environment goes too). Each is stopped as it is found, so none can fork
 * past the search; then all are killed at once. Needs only sh, grep, kill and /proc
 * (busybox has them; gVisor's /proc serves environ and stat).
 */
export function killMarkedScript(id: string): string {
  if (!/^[0-9a-f]{8,64}$/.test(id)) throw new Error('exec id must be hex');
  return [
    `m='${EXEC_MARKER}=${id}'; set_=' '; found=0`,
    'add() { for q; do case "$set_" in *" $q "*) ;; *) kill -STOP "$q" 2>/dev/null; set_="$set_$q "; found=1;; esac; done; }',
    'for f in $(grep -l "$m" /proc/[0-9]*/environ 2>/dev/null); do q=${f#/proc/}; add "${q%/environ}"; done',
    '[ "$set_" = " " ] && exit 0',
    'while [ $found = 1 ]; do found=0; for d in /proc/[0-9]*; do',
    '  { read -r s < "$d/stat"; } 2>/dev/null || continue; s=${s##*) }; set -- $s',
    '  case "$set_" in *" $2 "*) add "${d#/proc/}";; esac',
    'done; done',
    'kill -KILL $set_ 2>/dev/null; exit 0',
  ].join('\n');
}

/** Kills every process of the exec marked `id` inside `container` (by a second exec). */
export async function killMarked(container: Container, id: string): Promise<void> {
  const exec = await container.exec({ Cmd: ['sh', '-c', killMarkedScript(id)], AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      stream.destroy();
      resolve();
    }, KILL_TIMEOUT_MS);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    stream.on('data', () => undefined);
    stream.on('end', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}

/** Reads frames of Docker's multiplexed stream as they arrive (a header may be split across chunks). */
export class StreamDemuxer {
  private pending = Buffer.alloc(0);

  constructor(private readonly onFrame: (stream: 'stdout' | 'stderr', data: Buffer) => void) {}

  push(chunk: Buffer): void {
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (buf.length >= 8) {
      const len = buf.readUInt32BE(4);
      if (buf.length < 8 + len) break;
      if (len > 0 && buf[0] !== 0) this.onFrame(buf[0] === 2 ? 'stderr' : 'stdout', buf.subarray(8, 8 + len));
      buf = buf.subarray(8 + len);
    }
    this.pending = Buffer.from(buf);
  }
}

/** The exit code Docker reports once the exec has stopped running (it can trail the end of the stream briefly). */
export async function execExitCode(exec: Exec, waitMs = 3_000): Promise<number | null> {
  const end = Date.now() + waitMs;
  for (;;) {
    const info = await exec.inspect();
    if (!info.Running || Date.now() > end) return info.Running ? null : info.ExitCode;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A fresh id for marking an exec's processes. */
export function execId(): string {
  return randomBytes(12).toString('hex');
}

export interface StreamExecOptions {
  cmd: string[];
  env?: Record<string, string>;
  workdir?: string;
  timeoutMs: number;
  /** stdout and stderr together; what comes after is dropped. */
  maxOutputBytes: number;
  /** Aborting kills the command (the caller went away). */
  signal?: AbortSignal;
  /** Called once the command runs (after this, failures end the stream instead of throwing). */
  onStarted?: () => void;
}

export interface StreamExecResult {
  exitCode: number | null;
  truncated: boolean;
  timedOut: boolean;
  aborted: boolean;
  durationMs: number;
}

const markedEnv = (id: string, env: Record<string, string> = {}) => [
  ...Object.entries(env)
    .filter(([k]) => k !== EXEC_MARKER)
    .map(([k, v]) => `${k}=${v}`),
  `${EXEC_MARKER}=${id}`,
];

/**
 * Runs a command in a running container by Docker exec (no TTY) and hands its output to
 * `onOutput` as it arrives, decoded as UTF-8 per stream. On timeout or abort every process
 * of the command is killed inside the container; the exit code is then null.
 */
export async function streamExec(container: Container, o: StreamExecOptions, onOutput: (stream: 'stdout' | 'stderr', text: string) => void): Promise<StreamExecResult> {
  const id = execId();
  const exec = await container.exec({ Cmd: o.cmd, Env: markedEnv(id, o.env), WorkingDir: o.workdir, AttachStdout: true, AttachStderr: true, Tty: false });
  const t0 = Date.now();
  const stream = await exec.start({ hijack: true, stdin: false });
  // The client's idle timeout must not cut a quiet command.
  (stream as Socket).setTimeout?.(0);
  o.onStarted?.();
  const decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  let budget = o.maxOutputBytes;
  let truncated = false;
  const demuxer = new StreamDemuxer((s, data) => {
    if (budget <= 0) {
      truncated = true;
      return;
    }
    if (data.length > budget) {
      truncated = true;
      data = data.subarray(0, budget);
    }
    budget -= data.length;
    const text = decoders[s].write(data);
    if (text) onOutput(s, text);
  });

  let timedOut = false;
  let aborted = false;
  const ended = new Promise<void>((resolve) => {
    stream.on('data', (c: Buffer) => demuxer.push(c));
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', resolve);
  });
  const stop = async () => {
    await killMarked(container, id).catch(() => undefined);
    // The stream ends once the killed processes let go of it; never wait forever.
    const late = setTimeout(() => stream.destroy(), 5_000);
    await ended;
    clearTimeout(late);
  };
  let stopping: Promise<void> | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    stopping ??= stop();
  }, o.timeoutMs);
  const onAbort = () => {
    aborted = true;
    stopping ??= stop();
  };
  if (o.signal?.aborted) onAbort();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await ended;
    await stopping;
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
  }
  for (const s of ['stdout', 'stderr'] as const) {
    const rest = decoders[s].end();
    if (rest) onOutput(s, rest);
  }
  const durationMs = Date.now() - t0;
  const exitCode = timedOut || aborted ? null : await execExitCode(exec).catch(() => null);
  return { exitCode, truncated, timedOut, aborted, durationMs };
}

export interface TerminalOptions {
  cmd: string[];
  env?: Record<string, string>;
  cols?: number;
  rows?: number;
}

/**
 * Starts an interactive command with a TTY in a running container: the returned stream
 * carries raw terminal bytes both ways. `kill()` ends every process the terminal started.
 */
export async function openTerminal(container: Container, o: TerminalOptions) {
  const id = execId();
  const exec = await container.exec({
    Cmd: o.cmd,
    Env: markedEnv(id, { TERM: 'xterm-256color', ...o.env }),
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: true,
  });
  return {
    exec,
    async start(): Promise<Duplex> {
      const stream = await exec.start({ hijack: true, stdin: true, Tty: true });
      (stream as Socket).setTimeout?.(0);
      if (o.cols || o.rows) await exec.resize({ h: o.rows ?? 24, w: o.cols ?? 80 }).catch(() => undefined);
      return stream;
    },
    resize: (cols: number, rows: number) => exec.resize({ h: rows, w: cols }),
    kill: () => killMarked(container, id),
    exitCode: () => execExitCode(exec),
  };
}
