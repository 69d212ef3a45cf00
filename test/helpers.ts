import { randomBytes } from 'node:crypto';
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

export { demuxStreams as demuxLogs, execIn } from '../lib/docker-exec';
