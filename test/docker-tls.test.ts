import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { config } from '../lib/config';
import { localEngines, testFleet } from './helpers';

describe('Docker fleet over mutual TLS', () => {
  const fleet = testFleet();
  const engines = localEngines();

  it.each(engines.map((e) => [`${e.host}:${e.port}`, e]))('lists containers on %s with the orchestrator certificate', async (_n, e) => {
    const docker = fleet.engine(e);
    const containers = await docker.listContainers({ all: true });
    expect(Array.isArray(containers)).toBe(true);
    const info = await docker.info();
    expect(Object.keys(info.Runtimes)).toContain('runsc');
  });

  it('the engines are distinct daemons', async () => {
    const ids = await Promise.all(engines.map(async (e) => (await fleet.engine(e).info()).ID as string));
    expect(new Set(ids).size).toBe(engines.length);
  });

  it('refuses a client without a client certificate', async () => {
    const e = engines[0];
    const anonymous = new Docker({ protocol: 'https', host: e.host, port: e.port, ca: fs.readFileSync(config().DOCKER_TLS_CA_FILE), timeout: 5000 });
    await expect(anonymous.listContainers()).rejects.toThrow(/certificate|handshake|socket hang up|ECONNRESET|alert/i);
  });

  it('refuses a client whose certificate another CA signed', async () => {
    const e = engines[0];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rogue-ca-'));
    try {
      const script = path.join(__dirname, '..', 'deploy', 'certs', 'make-certs.sh');
      execFileSync(script, ['ca', dir]);
      execFileSync(script, ['client', dir, 'rogue']);
      const rogue = new Docker({
        protocol: 'https', host: e.host, port: e.port, timeout: 5000,
        ca: fs.readFileSync(config().DOCKER_TLS_CA_FILE),
        cert: fs.readFileSync(path.join(dir, 'rogue', 'cert.pem')),
        key: fs.readFileSync(path.join(dir, 'rogue', 'key.pem')),
      });
      await expect(rogue.listContainers()).rejects.toThrow(/certificate|unknown ca|handshake|socket hang up|ECONNRESET|alert/i);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses plain HTTP', async () => {
    const e = engines[0];
    const plain = new Docker({ protocol: 'http', host: e.host, port: e.port, timeout: 5000 });
    await expect(plain.listContainers()).rejects.toThrow();
  });
});
