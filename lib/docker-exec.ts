import type { Container } from 'dockerode';

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
