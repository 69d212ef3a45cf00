import { MockActivityEnvironment } from '@temporalio/testing';
import type Docker from 'dockerode';
import pino from 'pino';
import { createBackupActivities } from '../activities/backups';
import { runProbe } from '../activities/docker';
import { createMigrationDockerActivities, manifestOnServer, type CopyResult } from '../activities/migration-docker';
import { workspaceNames } from '../domain/container-spec';
import { config } from '../lib/config';
import { DockerFleet, type EngineEndpoint } from '../lib/docker-fleet';
import { createLogger } from '../lib/logger';
import { toolContainerOptions, toolsImage } from '../lib/tools-image';
import { startHarness, type Harness } from './harness';
import { localEngines, testFleet, uniq } from './helpers';
import { testDeps } from './temporal-env';

/** The real fleet, recording the options of every container the code under test creates. */
class RecordingFleet extends DockerFleet {
  readonly created: Docker.ContainerCreateOptions[] = [];
  private readonly inner = testFleet();
  constructor() {
    super({ caFile: '', certFile: '', keyFile: '' });
  }
  override engine(e: EngineEndpoint): Docker {
    const docker = this.inner.engine(e);
    const created = this.created;
    return new Proxy(docker, {
      get(target, key, receiver) {
        if (key !== 'createContainer') return Reflect.get(target, key, receiver);
        return (opts: Docker.ContainerCreateOptions) => {
          created.push(opts);
          return target.createContainer(opts);
        };
      },
    });
  }
}

const tools = toolsImage(config());
const image = config().WORKSPACE_IMAGE;
/** Names a newline-splitting script reads as other paths: "./x" and "/etc/hostname" (each reader's own, so never equal on two servers). */
const CRAFTED = [
  'cd /data && mkdir -p "a$(printf "\\nb")" "x$(printf "\\n")/etc" "t$(printf "\\t")ab" && printf hi > "a$(printf "\\nb")/f"',
  'printf secret > "x$(printf "\\n")/etc/hostname" && printf "b\\\\s" > "back\\\\slash" && ln -s "a$(printf "\\nb")/f" "to$(printf "\\n")newline" && sync',
].join(' && ');
/** ".", 4 directories ("a\nb", "x\n", "x\n/etc", "t\tab"), 3 files, 1 symlink. */
const ENTRIES = 9;
const SUMS = 'cd /data && find . -print0 | sort -z | xargs -0 ls -ld --full-time | sed "s/^\\S* *[0-9]* //" && find . -type f -print0 | sort -z | xargs -0 sha256sum';

const expectHardened = (o: Docker.ContainerCreateOptions) =>
  expect(o).toMatchObject({ Image: tools.image, HostConfig: expect.objectContaining({ Runtime: 'runc', NetworkMode: 'none', ReadonlyRootfs: true, CapDrop: ['ALL'] }) });

describe('volume helpers: NUL-safe manifests, from the tools image only', () => {
  const [source, target] = localEngines();
  const fleet = new RecordingFleet();
  const id = uniq('crafted');
  const names = workspaceNames(id);
  const warnings: string[] = [];
  const acts = createMigrationDockerActivities({ fleet, tools, logger: pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) }) });

  beforeAll(async () => {
    for (const e of [source, target]) {
      const d = testFleet().engine(e);
      await d.createVolume({ Name: names.volume, Labels: { 'podex.test': '1' } });
      await d.createContainer({ name: names.container, Image: image, Cmd: ['true'], Labels: { 'podex.test': '1' }, HostConfig: { Runtime: 'runc', NetworkMode: 'none', Binds: [`${names.volume}:/workspace`] } });
    }
    const fill = await runProbe(testFleet().engine(source), `${names.container}-fill`, { Image: image, Cmd: ['sh', '-c', CRAFTED], HostConfig: { Runtime: 'runc', NetworkMode: 'none', Binds: [`${names.volume}:/data`] } });
    expect(fill).toEqual({ code: 0, out: '' });
  }, 60_000);

  afterAll(async () => {
    for (const e of [source, target]) {
      const d = testFleet().engine(e);
      for (const c of [names.container, `${names.container}-restored`]) await d.getContainer(c).remove({ force: true }).catch(() => undefined);
      for (const v of [names.volume, `${names.volume}-copy`]) await d.getVolume(v).remove().catch(() => undefined);
    }
  });

  it('migrates directories named "a\\nb" and "x\\n/etc" with equal checksums, each entry counted once', async () => {
    const r: CopyResult = await new MockActivityEnvironment({ attempt: 1 }).run(acts.copyVolume, source, target, id, image);
    expect(r.target).toEqual(r.source);
    expect(r.source.files).toBe(ENTRIES);
    expect(r.source.bytes).toBe('hi'.length + 'secret'.length + 'b\\s'.length);
    // The archive's manifest (made in this process) and the disk's agreed: no fallback was needed.
    expect(warnings.filter((w) => w.includes('archive manifest differs'))).toEqual([]);
    // A retry lists the target by the same rules and leaves out what arrived whole.
    const again: CopyResult = await new MockActivityEnvironment({ attempt: 2 }).run(acts.copyVolume, source, target, id, image);
    expect(again.target).toEqual(r.source);
    expect(again.resumedBytes).toBe(r.source.bytes);
    const [a, b] = await Promise.all(
      [source, target].map((e) => runProbe(testFleet().engine(e), `${names.container}-sums`, { Image: image, Cmd: ['sh', '-c', SUMS], HostConfig: { Runtime: 'runc', NetworkMode: 'none', Binds: [`${names.volume}:/data:ro`] } })),
    );
    expect(a.code).toBe(0);
    expect(a.out).toContain('secret'.length.toString());
    expect(b.out).toBe(a.out);
  }, 120_000);

  it('runs the checks in a reader from the tools image: runc, no network, read-only root, no capabilities but reading', async () => {
    await manifestOnServer(fleet.engine(target), id, tools, 'target');
    const reader = await testFleet().engine(target).getContainer('podex-volume-reader').inspect();
    expect(reader.Config.Image).toBe(tools.image);
    expect(reader.Config.Labels).toMatchObject({ 'podex.managed': 'true', 'podex.role': 'volume-reader' });
    expect(reader.HostConfig).toMatchObject({ Runtime: 'runc', NetworkMode: 'none', ReadonlyRootfs: true, CapDrop: ['ALL'], CapAdd: ['DAC_READ_SEARCH'], SecurityOpt: ['no-new-privileges:true'] });
    const img = await testFleet().engine(target).getImage(tools.image).inspect();
    expect(img.Config.Labels).toMatchObject({ 'podex.image': 'tools' });
    expect(tools.image).not.toBe(image);
    for (const o of fleet.created) expectHardened(o);
  });

  it('a reader made from another image (an earlier release ran it from the workspace image) is replaced', async () => {
    const d = testFleet().engine(source);
    await d.getContainer('podex-volume-reader').remove({ force: true }).catch(() => undefined);
    const old = await d.createContainer({
      name: 'podex-volume-reader',
      Image: image,
      Cmd: ['sleep', '600'],
      Labels: { 'podex.managed': 'true', 'podex.role': 'volume-reader' },
      HostConfig: { Runtime: 'runc', NetworkMode: 'none', ReadonlyRootfs: true, Binds: [`${(await d.info()).DockerRootDir}/volumes:/volumes:ro`] },
    });
    await old.start();
    expect((await manifestOnServer(d, id, tools, 'source')).files).toBe(ENTRIES);
    const now = await d.getContainer('podex-volume-reader').inspect();
    expect(now.Id).not.toBe(old.id);
    expect(now.Config.Image).toBe(tools.image);
  });

  it('restore helpers (the copy into the live volume) run from the tools image with the same hardening', async () => {
    const deps = testDeps();
    try {
      const backups = createBackupActivities({ ...deps, fleet, logger: createLogger('silent'), tools });
      const d = testFleet().engine(source);
      await d.createVolume({ Name: `${names.volume}-copy`, Labels: { 'podex.test': '1' } });
      fleet.created.length = 0;
      // The crafted volume is copied over another one, as a restore swaps a staged snapshot in.
      await new MockActivityEnvironment().run(backups.replaceVolumeContents, source, `${id}-copy`, names.volume, image);
      expect(fleet.created.length).toBeGreaterThan(0);
      for (const o of fleet.created) expectHardened(o);
      expect(await manifestOnServer(d, `${id}-copy`, tools, 'copy')).toEqual(await manifestOnServer(d, id, tools, 'source'));
    } finally {
      await deps.close();
    }
  }, 60_000);

  it('helper options: read-only root, no network, runc, the tools image; extra settings are visible additions', () => {
    const o = toolContainerOptions(tools, { name: 'n', cmd: ['true'], binds: ['v:/data:ro'] });
    expectHardened(o);
    expect(o.HostConfig).toMatchObject({ CapAdd: [], SecurityOpt: ['no-new-privileges:true'], Binds: ['v:/data:ro'] });
    expect(o.Labels).toMatchObject({ 'podex.managed': 'true', 'podex.role': 'tool' });
  });
});

describe('helpers are out of tenants’ reach', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('helpers', {}, { inProcessWorker: false });
  });
  afterAll(async () => h?.close());

  it('exec and terminal address workspaces by id only: a helper’s name or container id is refused', async () => {
    const docker = testFleet().engine(localEngines()[1]);
    const reader = await docker.getContainer('podex-volume-reader').inspect();
    for (const who of ['podex-volume-reader', reader.Id, reader.Id.slice(0, 12)]) {
      for (const token of [h.userToken, h.adminToken]) {
        const res = await h.call('POST', `/workspaces/${who}/exec`, { token, body: { cmd: ['id'] } });
        expect(res.status).toBe(400);
        expect(JSON.stringify(res.body)).toContain('id');
      }
    }
    // A well-formed id that is no workspace is not found, whatever container might exist.
    expect((await h.call('POST', `/workspaces/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}/exec`, { token: h.userToken, body: { cmd: ['id'] } })).status).toBe(404);
  });
});
