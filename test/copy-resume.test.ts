import { Transform, type Readable } from 'node:stream';
import { MockActivityEnvironment } from '@temporalio/testing';
import pino from 'pino';
import type Docker from 'dockerode';
import { runProbe } from '../activities/docker';
import { createMigrationDockerActivities, type CopyResult } from '../activities/migration-docker';
import { workspaceNames } from '../domain/container-spec';
import { config } from '../lib/config';
import { DockerFleet, type EngineEndpoint } from '../lib/docker-fleet';
import { createLogger } from '../lib/logger';
import { toolsImage } from '../lib/tools-image';
import { localEngines, testFleet, uniq } from './helpers';

const MB = 1024 * 1024;
const SUMS = `cd /data && find . | sort | while read -r f; do if [ -f "$f" ]; then echo "$f $(stat -c %a "$f") $(sha256sum < "$f")"; else echo "$f"; fi; done`;

/** The real fleet, except that the source's archive stream breaks after `cutAfter` bytes (a lost worker or connection, as the target sees it). */
class CuttingFleet extends DockerFleet {
  cutAfter: number | undefined;
  private readonly inner = testFleet();
  constructor(private readonly source: EngineEndpoint) {
    super({ caFile: '', certFile: '', keyFile: '' });
  }
  override engine(e: EngineEndpoint): Docker {
    const docker = this.inner.engine(e);
    const limit = this.cutAfter;
    if (limit === undefined || DockerFleet.key(e) !== DockerFleet.key(this.source)) return docker;
    return new Proxy(docker, {
      get(target, key, receiver) {
        if (key !== 'getContainer') return Reflect.get(target, key, receiver);
        return (name: string) => {
          const c = target.getContainer(name);
          const getArchive = c.getArchive.bind(c);
          c.getArchive = (async (opts: { path: string }) => {
            const from = (await getArchive(opts)) as unknown as Readable;
            let passed = 0;
            const cut = new Transform({
              transform(chunk: Buffer, _enc, done) {
                if (passed + chunk.length <= limit) {
                  passed += chunk.length;
                  return done(null, chunk);
                }
                from.destroy();
                done(new Error('connection reset by peer'));
              },
            });
            return from.pipe(cut);
          }) as unknown as typeof c.getArchive;
          return c;
        };
      },
    });
  }
}

describe('a retried volume copy resumes where the broken one stopped', () => {
  const [source, target] = localEngines();
  const fleet = new CuttingFleet(source);
  const image = config().WORKSPACE_IMAGE;
  const id = uniq('resume');
  const names = workspaceNames(id);
  const acts = createMigrationDockerActivities({ fleet, logger: createLogger('silent'), tools: toolsImage(config()) });
  const warnings: string[] = [];
  const watched = createMigrationDockerActivities({ fleet, tools: toolsImage(config()), logger: pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) }) });
  const sums = (e: EngineEndpoint) =>
    runProbe(testFleet().engine(e), `${names.container}-sums`, { Image: image, Cmd: ['sh', '-c', SUMS], HostConfig: { Runtime: 'runc', NetworkMode: 'none', Binds: [`${names.volume}:/data:ro`] } });

  beforeAll(async () => {
    for (const e of [source, target]) {
      const d = testFleet().engine(e);
      await d.createVolume({ Name: names.volume, Labels: { 'podex.test': '1' } });
      await d.createContainer({ name: names.container, Image: image, Cmd: ['true'], Labels: { 'podex.test': '1' }, HostConfig: { Runtime: 'runc', NetworkMode: 'none', Binds: [`${names.volume}:/workspace`] } });
    }
    const fill = await runProbe(testFleet().engine(source), `${names.container}-fill`, {
      Image: image,
      Cmd: ['sh', '-c', `cd /data && mkdir -p src/deep && echo 'fn main() {}' > src/main.rs && ln -s src/main.rs link && for i in $(seq 1 12); do head -c ${8 * MB} /dev/urandom > part-$i.bin; done && chmod 600 part-3.bin && sync`],
      HostConfig: { Runtime: 'runc', NetworkMode: 'none', Binds: [`${names.volume}:/data`] },
    });
    expect(fill.code).toBe(0);
  }, 120_000);

  afterAll(async () => {
    for (const e of [source, target]) {
      const d = testFleet().engine(e);
      await d.getContainer(names.container).remove({ force: true }).catch(() => undefined);
      await d.getVolume(names.volume).remove().catch(() => undefined);
    }
  });

  it('sends only what the target does not hold whole, and the checksums agree', async () => {
    // Attempt 1 breaks after 60 MB of the ~96 MB archive.
    fleet.cutAfter = 60 * MB;
    const first = new MockActivityEnvironment({ attempt: 1 });
    await expect(first.run(acts.copyVolume, source, target, id, image)).rejects.toThrow();

    // Attempt 2 (a new worker, say) lists the target and leaves out the files that arrived whole.
    fleet.cutAfter = undefined;
    const beats: { bytes?: number; sentBytes?: number; resumedBytes?: number }[] = [];
    const second = new MockActivityEnvironment({ attempt: 2 });
    second.on('heartbeat', (d: (typeof beats)[number]) => beats.push(d));
    const r: CopyResult = await second.run(acts.copyVolume, source, target, id, image);

    expect(r.bytes).toBeGreaterThan(96 * MB);
    // At least five whole 8 MB files were on the target already; a file cut mid-write was sent again.
    expect(r.resumedBytes).toBeGreaterThanOrEqual(5 * 8 * MB);
    expect(r.resumedBytes % (8 * MB)).toBe(0);
    expect(r.sentBytes).toBeLessThan(r.bytes - r.resumedBytes + MB);
    expect(r.target.digest).toBe(r.source.digest);
    expect(beats.at(-1)).toMatchObject({ resumedBytes: r.resumedBytes, sentBytes: r.sentBytes });

    // Independently of the activity's own check: every path, mode and checksum is the same on both servers.
    const [a, b] = await Promise.all([sums(source), sums(target)]);
    expect(a.code).toBe(0);
    expect(a.out).toContain('./part-12.bin 644');
    expect(a.out).toContain('./part-3.bin 600');
    expect(b.out).toBe(a.out);
  }, 180_000);

  it('a first attempt sends everything, even onto a target that holds files', async () => {
    const r: CopyResult = await new MockActivityEnvironment({ attempt: 1 }).run(acts.copyVolume, source, target, id, image);
    expect(r.resumedBytes).toBe(0);
    expect(r.sentBytes).toBe(r.bytes);
    expect(r.target.digest).toBe(r.source.digest);
  }, 120_000);

  it('when the archive manifest and the disk script disagree (a file name that is not UTF-8), the source disk decides', async () => {
    const odd = await runProbe(testFleet().engine(source), `${names.container}-odd`, {
      Image: image,
      Cmd: ['sh', '-c', `cd /data && printf 'two\nlines' > "$(printf 'odd\\377name')" && sync`],
      HostConfig: { Runtime: 'runc', NetworkMode: 'none', Binds: [`${names.volume}:/data`] },
    });
    expect(odd.code).toBe(0);
    const r: CopyResult = await new MockActivityEnvironment({ attempt: 1 }).run(watched.copyVolume, source, target, id, image);
    expect(r.target.digest).toBe(r.source.digest);
    expect(warnings.join('')).toContain('the archive manifest differs from the source disk manifest');
    const [a, b] = await Promise.all([sums(source), sums(target)]);
    expect(b.out).toBe(a.out);
  }, 120_000);
});
