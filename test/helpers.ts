import { randomBytes } from 'node:crypto';
import type { Container } from 'dockerode';
import { config } from '../lib/config';
import { DockerFleet, parseEndpoints, type EngineEndpoint } from '../lib/docker-fleet';

/** The local fleet's engines (deploy/local/stack.sh writes them to .stack/env). */
export function localEngines(): EngineEndpoint[] {
  const engines = parseEndpoints(process.env.PODEX_LOCAL_ENGINES);
  if (engines.length < 2) throw new Error('PODEX_LOCAL_ENGINES must list the local fleet (run: npm run stack:up)');
  return engines;
}

export function testFleet(): DockerFleet {
  const c = config();
  return new DockerFleet({ caFile: c.DOCKER_TLS_CA_FILE, certFile: c.DOCKER_TLS_CERT_FILE, keyFile: c.DOCKER_TLS_KEY_FILE });
}

/** A short unique suffix for names a test creates (containers, networks, task queues). */
export function uniq(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** Splits Docker's multiplexed stdout/stderr log stream (non-TTY containers). */
export function demuxLogs(buf: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length) {
    const stream = buf[i];
    const len = buf.readUInt32BE(i + 4);
    (stream === 2 ? err : out).push(buf.subarray(i + 8, i + 8 + len));
    i += 8 + len;
  }
  return { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** Runs a command in a running container through the Docker API; returns exit code and output. */
export async function execIn(container: Container, cmd: string[]): Promise<{ code: number; out: string }> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const { ExitCode } = await exec.inspect();
  const { stdout, stderr } = demuxLogs(Buffer.concat(chunks));
  return { code: ExitCode ?? -1, out: stdout + stderr };
}
