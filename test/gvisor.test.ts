import fs from 'node:fs';
import type Docker from 'dockerode';
import { config } from '../lib/config';
import { demuxLogs, localEngines, testFleet, uniq } from './helpers';

/** Runs a one-shot container to completion and returns its exit code and output. */
async function runOnce(docker: Docker, opts: Docker.ContainerCreateOptions): Promise<{ code: number; stdout: string; stderr: string }> {
  const c = await docker.createContainer({ Image: config().WORKSPACE_IMAGE, Labels: { 'podex.test': '1' }, ...opts });
  try {
    await c.start();
    const { StatusCode } = await c.wait();
    const logs = demuxLogs((await c.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer);
    return { code: StatusCode, ...logs };
  } finally {
    await c.remove({ force: true });
  }
}

describe('gVisor containers on a bridge network without inter-container communication', () => {
  const docker = testFleet().engine(localEngines()[0]);
  const created: { networks: string[]; containers: string[] } = { networks: [], containers: [] };

  afterAll(async () => {
    for (const id of created.containers) await docker.getContainer(id).remove({ force: true }).catch(() => undefined);
    for (const id of created.networks) await docker.getNetwork(id).remove().catch(() => undefined);
  });

  async function network(icc: boolean): Promise<string> {
    const name = uniq(icc ? 'podex-test-icc' : 'podex-test-noicc');
    await docker.createNetwork({
      Name: name,
      Driver: 'bridge',
      Labels: { 'podex.test': '1' },
      Options: { 'com.docker.network.bridge.enable_icc': String(icc) },
    });
    created.networks.push(name);
    return name;
  }

  it('runs under runsc and reports gVisor’s kernel, not the host’s', async () => {
    const net = await network(false);
    const inspect = await docker.getNetwork(net).inspect();
    expect(inspect.Driver).toBe('bridge');
    expect(inspect.Options?.['com.docker.network.bridge.enable_icc']).toBe('false');

    const r = await runOnce(docker, { Cmd: ['cat', '/proc/version'], HostConfig: { Runtime: 'runsc', NetworkMode: net } });
    expect(r.code).toBe(0);
    const host = fs.readFileSync('/proc/version', 'utf8').trim();
    expect(r.stdout.trim()).toMatch(/^Linux version/);
    expect(r.stdout.trim()).not.toBe(host);
    // runc on the same engine sees the host kernel: the difference is the runtime's doing.
    const runc = await runOnce(docker, { Cmd: ['cat', '/proc/version'], HostConfig: { Runtime: 'runc', NetworkMode: net } });
    expect(runc.stdout.trim()).toBe(host);
  });

  /** Starts an HTTP server container on `net` and asks a second container to reach it. */
  async function reachable(net: string): Promise<boolean> {
    const server = await docker.createContainer({
      Image: config().WORKSPACE_IMAGE,
      Cmd: ['httpd', '-f', '-p', '8080', '-h', '/var/www'],
      Labels: { 'podex.test': '1' },
      HostConfig: { Runtime: 'runsc', NetworkMode: net },
    });
    created.containers.push(server.id);
    await server.start();
    const ip = (await server.inspect()).NetworkSettings.Networks[net].IPAddress;
    const probe = `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} 8080 | head -1`;
    const r = await runOnce(docker, { Cmd: ['sh', '-c', probe], HostConfig: { Runtime: 'runsc', NetworkMode: net } });
    await server.remove({ force: true });
    return /^HTTP\/1\.[01] 200/.test(r.stdout);
  }

  it('blocks container-to-container traffic when ICC is off (and allows it when on)', async () => {
    const [open, closed] = await Promise.all([network(true), network(false)]);
    expect(await reachable(open)).toBe(true);
    expect(await reachable(closed)).toBe(false);
  });
});
