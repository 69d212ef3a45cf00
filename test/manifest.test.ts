import { runProbe } from '../activities/docker';
import { manifestOnServer } from '../activities/migration-docker';
import { config } from '../lib/config';
import { localEngines, testFleet, uniq } from './helpers';

/** The check a migration relies on: equal data gives equal digests on two servers, any change does not. */
describe('volume manifests computed on each server', () => {
  const fleet = testFleet();
  const [a, b] = [fleet.engine(localEngines()[0]), fleet.engine(localEngines()[1])];
  const id = `${uniq('manifest')}`;
  const volume = `podex-ws-${id}`;
  const image = config().WORKSPACE_IMAGE;
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
    const [ma, mb] = await Promise.all([manifestOnServer(a, id, image, 'source'), manifestOnServer(b, id, image, 'target')]);
    expect(ma).toEqual(mb);
    expect(ma).toMatchObject({ files: 5, bytes: 100_006 });
    for (const change of [`printf 'hellO\\n' > src/a.txt && chmod 600 src/a.txt`, `printf 'hello\\n' > src/a.txt && chmod 644 src/a.txt`, `chmod 600 src/a.txt && ln -sf big link`]) {
      expect((await write(b, change)).code).toBe(0);
      expect((await manifestOnServer(b, id, image, 'target')).digest).not.toBe(ma.digest);
    }
  });
});
