import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { parseListing, withoutHeld } from './tar-resume';

const T1 = new Date('2026-01-02T03:04:05Z');
const T2 = new Date('2026-02-03T04:05:06Z');
const secs = (d: Date) => d.getTime() / 1000;

function archive(): Readable {
  const pack = tar.pack();
  pack.entry({ name: 'workspace/', type: 'directory', mode: 0o755, mtime: T1 });
  pack.entry({ name: 'workspace/whole.bin', mode: 0o644, mtime: T1 }, Buffer.alloc(5000, 1));
  pack.entry({ name: 'workspace/cut.bin', mode: 0o644, mtime: T1 }, Buffer.alloc(3000, 2));
  pack.entry({ name: 'workspace/src/', type: 'directory', mode: 0o755, mtime: T2 });
  pack.entry({ name: 'workspace/src/touched.rs', mode: 0o600, mtime: T2 }, 'fn main() {}\n');
  pack.entry({ name: 'workspace/link', type: 'symlink', linkname: 'src/touched.rs', mtime: T2 });
  pack.finalize();
  return pack;
}

async function entries(stream: Readable): Promise<{ name: string; type?: string; mode?: number; mtime?: number; body: Buffer }[]> {
  const out: { name: string; type?: string; mode?: number; mtime?: number; body: Buffer }[] = [];
  const extract = tar.extract();
  extract.on('entry', (h, s, next) => {
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.on('end', () => {
      out.push({ name: h.name, type: h.type ?? undefined, mode: h.mode, mtime: h.mtime ? secs(h.mtime) : undefined, body: Buffer.concat(parts) });
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    extract.on('finish', resolve);
    extract.on('error', reject);
    stream.pipe(extract);
  });
  return out;
}

describe('resuming a tar copy', () => {
  it('reads the target listing, relative to the folder it was made in', () => {
    const held = parseListing(`5000/${secs(T1)}/./whole.bin//\n12/${secs(T2)}/./src/a b.rs//\nnot a line//\n`);
    expect([...held]).toEqual([
      ['whole.bin', { size: 5000, mtime: secs(T1) }],
      ['src/a b.rs', { size: 12, mtime: secs(T2) }],
    ]);
  });

  it('reads a name holding newlines as one file: it cannot forge the record of another', () => {
    // A directory named "x\n5000/<mtime>/./whole.bin" would, split at newlines, claim whole.bin is held.
    const forged = `x\n5000/${secs(T1)}/./whole.bin`;
    const held = parseListing(`7/${secs(T2)}/./${forged}/f//\n9/${secs(T2)}/./a\nb//\n`);
    expect([...held]).toEqual([
      [`${forged}/f`, { size: 7, mtime: secs(T2) }],
      ['a\nb', { size: 9, mtime: secs(T2) }],
    ]);
  });

  it('leaves out only the files the target holds whole; everything else passes unchanged', async () => {
    const held = parseListing(
      [
        `5000/${secs(T1)}/./whole.bin//`, // same size and mtime: left out
        `1024/${secs(T1) + 7}/./cut.bin//`, // cut off mid-write: smaller, fresh mtime
        `13/${secs(T2) + 1}/./src/touched.rs//`, // same size, another mtime
      ].join('\n'),
    );
    const counters = { skippedBytes: 0, skippedFiles: 0 };
    const got = await entries(withoutHeld(archive(), '/workspace', held, counters));
    const all = await entries(archive());
    expect(got.map((e) => e.name)).toEqual(['workspace/', 'workspace/cut.bin', 'workspace/src/', 'workspace/src/touched.rs', 'workspace/link']);
    // Every passed entry is byte-for-byte and header-for-header the original.
    for (const e of got) expect(e).toEqual(all.find((a) => a.name === e.name));
    expect(counters).toEqual({ skippedBytes: 5000, skippedFiles: 1 });
  });

  it('passes a broken archive on as an error, never as a clean end', async () => {
    const whole = await new Promise<Buffer>((resolve) => {
      const parts: Buffer[] = [];
      archive()
        .on('data', (c: Buffer) => parts.push(c))
        .on('end', () => resolve(Buffer.concat(parts)));
    });
    const cut = new Readable({
      read() {
        this.push(whole.subarray(0, 1536));
        this.destroy(new Error('connection reset'));
      },
    });
    const out = withoutHeld(cut, 'workspace', new Map(), { skippedBytes: 0, skippedFiles: 0 });
    await expect(
      new Promise((resolve, reject) => {
        out.on('error', reject);
        out.on('end', resolve);
        out.resume();
      }),
    ).rejects.toThrow('connection reset');
  });
});
