/**
 * The manifest of a folder computed from its tar archive as it streams past, in exactly the
 * form the on-disk manifest script prints (see MANIFEST_SCRIPT in activities/migration-docker):
 * one line per directory, regular file and symlink, sorted bytewise by path ("./…"),
 *   `path\tdir\tMODE`, `path\tfile\tMODE\tSIZE\tSHA256`, `path\tlink\tTARGET`,
 * then the number of lines, the total file bytes and the SHA-256 of the lines. Paths and link
 * targets are printed through `escapeName`, so each entry is one line whatever its name holds.
 * Hashing happens in the process that reads the archive (OpenSSL's SHA-256), so the source
 * of a copy is checked without a second read of its disk.
 */
import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import tar from 'tar-stream';

export interface Manifest {
  files: number;
  bytes: number;
  digest: string;
}

/**
 * A name as the manifest prints it: backslash, newline and tab escaped (`\\`, `\n`, `\t`), so a
 * name is one field of one line and two different names never print alike.
 */
export const escapeName = (name: string) => name.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\t/g, '\\t');

/** Builds the manifest text's digest from lines keyed by path. */
function manifestOf(lines: Map<string, string>, bytes: number): Manifest {
  const paths = [...lines.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const h = createHash('sha256');
  for (const p of paths) h.update(`${lines.get(p)}\n`);
  return { files: paths.length, bytes, digest: h.digest('hex') };
}

/**
 * Names in an archive of the folder `root` ("/workspace" gives entries "workspace/…") relative
 * to that folder: "" for the folder itself, "src/a.txt" below it, null outside it.
 */
export function relativeToRoot(root: string): (name: string) => string | null {
  const top = root.replace(/^\/+|\/+$/g, '');
  return (name) => {
    const n = name.replace(/\/+$/, '');
    if (n === top) return '';
    return n.startsWith(`${top}/`) ? n.slice(top.length + 1) : null;
  };
}

/** A writable that takes a tar archive rooted at `root` ("workspace" for /workspace) and resolves `manifest` at its end. */
export function tarManifest(root: string): { sink: Writable; manifest: Promise<Manifest> } {
  const relative = relativeToRoot(root);
  const extract = tar.extract();
  const lines = new Map<string, string>();
  const files = new Map<string, { mode: string; size: number; sha: string }>();
  let bytes = 0;
  /** The on-disk script's spelling: "." and "./src/a.txt". */
  const rel = (name: string) => {
    const r = relative(name);
    return r === null ? null : r === '' ? '.' : `./${r}`;
  };
  const mode = (m: number | undefined) => ((m ?? 0) & 0o7777).toString(8);
  extract.on('entry', (header, stream, next) => {
    const p = rel(header.name);
    const done = () => next();
    if (p === null) {
      stream.on('end', done);
      stream.resume();
      return;
    }
    if (header.type === 'file' || header.type === 'contiguous-file') {
      const h = createHash('sha256');
      let size = 0;
      stream.on('data', (c: Buffer) => {
        size += c.length;
        h.update(c);
      });
      stream.on('end', () => {
        const f = { mode: mode(header.mode), size, sha: h.digest('hex') };
        files.set(p, f);
        lines.set(p, `${escapeName(p)}\tfile\t${f.mode}\t${f.size}\t${f.sha}`);
        bytes += size;
        next();
      });
      return;
    }
    stream.on('end', done);
    stream.resume();
    if (header.type === 'directory') lines.set(p, `${escapeName(p)}\tdir\t${mode(header.mode)}`);
    else if (header.type === 'symlink') lines.set(p, `${escapeName(p)}\tlink\t${escapeName(header.linkname ?? '')}`);
    else if (header.type === 'link') {
      // A hard link is another name for a file earlier in the archive: on disk it is that file.
      const target = rel(header.linkname ?? '');
      const f = target ? files.get(target) : undefined;
      if (f) {
        lines.set(p, `${escapeName(p)}\tfile\t${f.mode}\t${f.size}\t${f.sha}`);
        bytes += f.size;
      } else lines.set(p, `${escapeName(p)}\tunresolved-link`);
    }
  });
  const manifest = new Promise<Manifest>((resolve, reject) => {
    extract.on('finish', () => resolve(manifestOf(lines, bytes)));
    extract.on('error', reject);
  });
  manifest.catch(() => undefined);
  return { sink: extract, manifest };
}
