/**
 * Resuming an interrupted copy of a tar archive: the entries the target already holds whole
 * are left out of the stream, everything else passes unchanged. "Whole" is rsync's quick
 * check: a regular file of the same size and modification time (seconds). A file cut off
 * mid-write has a smaller size or a fresh mtime (the unpacker sets the archived mtime only
 * after the content), so it is sent again; the checksum comparison afterwards is the proof.
 */
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { relativeToRoot } from './tar-manifest';

export interface HeldFile {
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
}

export interface ResumeCounters {
  /** Bytes of file content left out because the target holds them. */
  skippedBytes: number;
  skippedFiles: number;
}

/**
 * A listing of regular files as `LISTING_SCRIPT` prints them under a folder, keyed by their
 * path relative to it ("src/a.txt"). Each record ends in "//\n", which no path find prints can
 * hold (it never has an empty component), so a name with a newline is one record and cannot
 * forge another. Records that do not parse are ignored: a file left out is simply sent again.
 */
export function parseListing(text: string): Map<string, HeldFile> {
  const held = new Map<string, HeldFile>();
  for (const record of text.split('//\n')) {
    const m = /^(\d+)\/(\d+)\/\.\/([^]+)$/.exec(record);
    if (!m) continue;
    held.set(m[3], { size: Number(m[1]), mtime: Number(m[2]) });
  }
  return held;
}

/** The shell command (busybox or GNU) that prints the listing `parseListing` reads, for the folder it runs in. */
export const LISTING_SCRIPT = `find . -type f -exec stat -c '%s/%Y/%n//' {} +`;

/**
 * The archive without the regular files `held` already has. `root` is the archive's top
 * entry ("workspace" for a volume mounted at /workspace): names below it are matched
 * against the listing's relative paths.
 */
export function withoutHeld(archive: Readable, root: string, held: Map<string, HeldFile>, counters: ResumeCounters): Readable {
  const extract = tar.extract();
  const pack = tar.pack();
  const relative = relativeToRoot(root);
  extract.on('entry', (header, stream, next) => {
    const rel = relative(header.name);
    const have = rel === null ? undefined : held.get(rel);
    const mtime = Math.floor((header.mtime?.getTime() ?? -1000) / 1000);
    if (header.type === 'file' && have && have.size === header.size && have.mtime === mtime) {
      counters.skippedBytes += header.size ?? 0;
      counters.skippedFiles++;
      stream.on('end', () => next());
      stream.resume();
      return;
    }
    stream.pipe(pack.entry(header, (err) => next(err ?? undefined)));
  });
  extract.on('finish', () => pack.finalize());
  extract.on('error', (err) => pack.destroy(err));
  archive.on('error', (err) => extract.destroy(err));
  archive.pipe(extract);
  return pack;
}

/**
 * The archive with its top folder `root` ("/workspace") taken off the names: "workspace/src/a"
 * becomes "src/a", the folder itself "./", hard links likewise; anything outside is dropped.
 * Docker unpacks into a container with a read-only root only below a volume's mount, so a
 * restore helper (read-only, from the tools image) is given the archive for its mount point.
 */
export function rerooted(archive: Readable, root: string): Readable {
  const extract = tar.extract();
  const pack = tar.pack();
  const relative = relativeToRoot(root);
  extract.on('entry', (header, stream, next) => {
    const rel = relative(header.name);
    if (rel === null) {
      stream.on('end', () => next());
      stream.resume();
      return;
    }
    const out = { ...header, name: rel === '' ? './' : header.type === 'directory' ? `${rel}/` : rel };
    if (header.type === 'link' && header.linkname) out.linkname = relative(header.linkname) ?? header.linkname;
    stream.pipe(pack.entry(out, (err) => next(err ?? undefined)));
  });
  extract.on('finish', () => pack.finalize());
  extract.on('error', (err) => pack.destroy(err));
  archive.on('error', (err) => extract.destroy(err));
  archive.pipe(extract);
  return pack;
}
