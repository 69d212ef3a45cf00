import { runProbe } from '../activities/docker';
import { manifestOnServer } from '../activities/migration-docker';
import { config } from '../lib/config';
import { tarManifest } from '../lib/tar-manifest';
import { toolsImage } from '../lib/tools-image';
import { localEngines, testFleet, uniq } from './helpers';

/** The check a migration relies on: equal data gives equal digests on two servers, any change does not. */
describe('volume manifests computed on each server', () => {
  const fleet = testFleet();
  const [a, b] = [fleet.engine(localEngines()[0]), fleet.engine(localEngines()[1])];
  const id = `${uniq('manifest')}`;
  const volume = `podex-ws-${id}`;
  const image = config().WORKSPACE_IMAGE;
  const tools = toolsImage(config());
  const write = (docker: typeof a, script: string) =>
    runProbe(docker, `${volume}-write`, { Image: image, Cmd: ['sh', '-c', `cd /data && ${script}`], HostConfig: { Runtime: 'runc', NetworkMode: 'none', Binds: [`${volume}:/data`] } });

  beforeAll(async () => {
    for (const d of [a, b]) {
      await d.createVolume({ Name: volume, Labels: { 'podex.test': '1' } });
      const w = await write(d, `mkdir -p src && printf 'hello\\n' > src/a.txt && head -c 100000 /dev/zero > big && ln -s src/a.txt link && chmod 600 src/a.txt`);
      expect(w.code).toBe(0);
    }
  });
  afterAll(async () => {
    for (const d of [a, b]) await d.getVolume(volume).remove().catch(() => undefined);
  });

  it('agrees on identical data and disagrees on a changed byte, mode or link', async () => {
    const [ma, mb] = await Promise.all([manifestOnServer(a, id, tools, 'source'), manifestOnServer(b, id, tools, 'target')]);
    expect(ma).toEqual(mb);
    expect(ma).toMatchObject({ files: 5, bytes: 100_006 });
    for (const change of [`printf 'hellO\\n' > src/a.txt && chmod 600 src/a.txt`, `printf 'hello\\n' > src/a.txt && chmod 644 src/a.txt`, `chmod 600 src/a.txt && ln -sf big link`]) {
      expect((await write(b, change)).code).toBe(0);
      expect((await manifestOnServer(b, id, tools, 'target')).digest).not.toBe(ma.digest);
    }
  });

  it('runs by exec in one read-only reader per server, made again when someone removes it', async () => {
    await manifestOnServer(a, id, tools, 'source');
    const since = Math.floor(Date.now() / 1000) - 1;
    const before = await manifestOnServer(a, id, tools, 'source');
    const until = Math.ceil(Date.now() / 1000) + 1;
    const reader = await a.getContainer('podex-volume-reader').inspect();
    expect(reader.State.Running).toBe(true);
    expect(reader.HostConfig).toMatchObject({ Runtime: 'runc', NetworkMode: 'none', ReadonlyRootfs: true, CapDrop: ['ALL'], CapAdd: ['DAC_READ_SEARCH'] });
    expect(reader.Mounts).toEqual([expect.objectContaining({ Destination: '/volumes', RW: false })]);
    // The check ran as an exec in the reader; no container was made for it.
    type Event = { Action: string; Actor: { Attributes: { name?: string } } };
    // With `until`, the engine answers a finite stream of JSON lines.
    const stream = (await a.getEvents({ since, until, filters: { type: ['container'] } })) as NodeJS.ReadableStream;
    let text = '';
    for await (const chunk of stream) text += chunk.toString();
    const events = text
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Event);
    expect(events.some((e) => e.Action.startsWith('exec_start') && e.Actor.Attributes.name === 'podex-volume-reader')).toBe(true);
    expect(events.filter((e) => e.Action === 'create' && e.Actor.Attributes.name?.startsWith('podex-manifest-'))).toEqual([]);

    await a.getContainer('podex-volume-reader').remove({ force: true });
    expect(await manifestOnServer(a, id, tools, 'source')).toEqual(before);
    expect((await a.getContainer('podex-volume-reader').inspect()).Id).not.toBe(reader.Id);
    // A container of that name that is not the reader (no volumes mounted) is replaced by one.
    const reader2 = (await a.getContainer('podex-volume-reader').inspect()).Id;
    await a.getContainer('podex-volume-reader').remove({ force: true });
    const impostor = await a.createContainer({ name: 'podex-volume-reader', Image: image, Cmd: ['sleep', '600'], Labels: { 'podex.test': '1' }, HostConfig: { Runtime: 'runc', NetworkMode: 'none' } });
    await impostor.start();
    expect(await manifestOnServer(a, id, tools, 'source')).toEqual(before);
    const replaced = await a.getContainer('podex-volume-reader').inspect();
    expect([impostor.id, reader2]).not.toContain(replaced.Id);
    expect(replaced.Mounts).toEqual([expect.objectContaining({ Destination: '/volumes', RW: false })]);
    // A volume that does not exist is an error, never an empty manifest.
    await expect(manifestOnServer(a, `${id}-missing`, tools, 'source')).rejects.toThrow(/no such volume|404/i);
  });
});

/** The source side of a copy is hashed from the archive as it streams: it must print exactly what the script prints on disk. */
describe('a manifest made from the volume archive', () => {
  const docker = testFleet().engine(localEngines()[0]);
  const id = `${uniq('archive-manifest')}`;
  const volume = `podex-ws-${id}`;
  const image = config().WORKSPACE_IMAGE;
  const tools = toolsImage(config());

  beforeAll(async () => {
    await docker.createVolume({ Name: volume, Labels: { 'podex.test': '1' } });
    await docker.createContainer({ name: volume, Image: image, Cmd: ['true'], Labels: { 'podex.test': '1' }, HostConfig: { Runtime: 'runc', NetworkMode: 'none', Binds: [`${volume}:/workspace`] } });
  });
  afterAll(async () => {
    await docker.getContainer(volume).remove({ force: true }).catch(() => undefined);
    await docker.getVolume(volume).remove().catch(() => undefined);
  });

  it('equals the on-disk manifest for directories, modes, special bits, symlinks, hard links, empty files, odd and long names and large files', async () => {
    const w = await runProbe(docker, `${volume}-write`, {
      Image: image,
      Cmd: [
        'sh',
        '-c',
        [
          'cd /data && mkdir -p "src/with space" deep/er/est shared && chmod 1777 shared && chmod 700 deep',
          "printf 'fn main() {}\\n' > src/main.rs && : > empty && head -c 300000 /dev/urandom > 'src/with space/blob.bin'",
          // 1 MiB and over: hashed by openssl on disk, by Node in the archive.
          "head -c 1048576 /dev/urandom > 'src/exactly-1mib' && head -c 3000000 /dev/urandom > 'src/with space/large.bin'",
          // Names longer than ustar holds (the archive carries them in PAX records).
          'a=$(head -c 120 /dev/zero | tr "\\0" a) && b=$(head -c 120 /dev/zero | tr "\\0" b) && mkdir -p "$a/$b" && printf z > "$a/$b/$(head -c 110 /dev/zero | tr "\\0" c)"',
          'printf x > tool && chmod 4755 tool && printf y > "deep/er/est/ü-ñ.txt" && chmod 640 "deep/er/est/ü-ñ.txt"',
          'ln -s src/main.rs link && ln -s ../missing deep/dangling && ln src/main.rs hard-link && sync',
        ].join(' && '),
      ],
      HostConfig: { Runtime: 'runc', NetworkMode: 'none', Binds: [`${volume}:/data`] },
    });
    expect(w.code).toBe(0);
    const onDisk = await manifestOnServer(docker, id, tools, 'disk');
    const fromArchive = tarManifest('/workspace');
    const archive = (await docker.getContainer(volume).getArchive({ path: '/workspace' })) as unknown as NodeJS.ReadableStream;
    archive.pipe(fromArchive.sink);
    expect(await fromArchive.manifest).toEqual(onDisk);
    expect(onDisk.files).toBe(20); // ".", 8 directories, 8 files, 2 symlinks, 1 hard link
    expect(onDisk.bytes).toBeGreaterThan(4_048_576);
  }, 60_000);
});
