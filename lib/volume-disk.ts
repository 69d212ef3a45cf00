/**
 * A workspace volume's size limit: its `_data` folder is the mount point of its own ext4
 * filesystem, a sparse image file beside it (`<volume>/disk.img`) mounted through a loop
 * device, so a write past the tier's size fails with ENOSPC inside the workspace and never
 * fills the server.
 *
 * Why not the local driver's `size` option (xfs project quota): dockerd 20.10 keeps a volume's
 * project id in memory by path, so a volume removed and made again under the same name (a
 * workspace migrated away and back) gets no quota at all (moby#43891), and after a restart
 * it rescans only the volumes folder's first level, so new volumes can reuse the project id
 * of a live one and share its budget. Project quotas also need a kernel built with them;
 * a loop device and ext4 need nothing but what every Linux server has.
 *
 * The mount is made in the engine's own mount namespace by a short-lived helper from the
 * tools image (runc, no network, a read-only root) that enters dockerd's mount namespace
 * and runs the server's own mkfs.ext4, mount and chattr: the bootstrap installs them and the
 * onboarding audit checks them. The empty folder under the mount is made immutable, so a
 * volume whose disk is not mounted (a server rebooted without the remount unit) refuses
 * writes instead of silently taking unlimited ones.
 */
import type Docker from 'dockerode';
import { runTool, type ToolsImage } from './tools-image';

/** The volume label that records its disk's size (the size a disk made again after a loss gets). */
export const DISK_LABEL = 'podex.disk_bytes';
/** The helper's exit code when the server lacks what a disk needs (tools, loop devices). */
const UNSUPPORTED = 3;

/** A server that cannot give volumes a disk (no loop devices, no mkfs.ext4): retrying cannot fix it. */
export class VolumeDiskUnsupportedError extends Error {
  override name = 'VolumeDiskUnsupported';
}

/**
 * Runs in the helper (busybox): finds the engine's dockerd (the one whose data root is `$1`,
 * or the only one) and runs `$2` with the other arguments in its mount namespace.
 */
const ENTER = `root=$1; script=$2; shift 2; pid=
all=$(pidof dockerd || true)
for p in $all; do case " $(tr '\\0' ' ' </proc/$p/cmdline) " in *" --data-root $root "*|*" --data-root=$root "*) pid=$p ;; esac; done
[ -n "$pid" ] || case "$all" in *" "*|"") ;; *) pid=$all ;; esac
[ -n "$pid" ] || { echo "cannot tell which dockerd serves $root (found: \${all:-none})" >&2; exit ${UNSUPPORTED}; }
exec nsenter -t "$pid" -m -- sh -c "$script" podex-disk "$@"`;

/** On the server: the volume's disk made (once), then mounted on its `_data` folder. Idempotent. */
const ATTACH = `set -eu
d=$1; bytes=$2; img=\${d%/_data}/disk.img
for t in mkfs.ext4 chattr mountpoint losetup truncate; do
  command -v $t >/dev/null || { echo "$t is missing on the server (e2fsprogs, util-linux)" >&2; exit ${UNSUPPORTED}; }
done
[ -d "$d" ] || { echo "no volume folder $d" >&2; exit 4; }
mountpoint -q "$d" && exit 0
# Attached but not mounted here (a mount hidden or detached while something still holds it): a
# second mount of the same filesystem would corrupt it.
if grep -qxF "$img" /sys/block/loop*/loop/backing_file 2>/dev/null; then echo "the disk $img is still attached elsewhere" >&2; exit 6; fi
losetup -f >/dev/null || { echo "no free loop device on the server" >&2; exit ${UNSUPPORTED}; }
if [ ! -e "$img" ]; then
  truncate -s "$bytes" "$img.tmp"
  mkfs.ext4 -q -F -m 0 "$img.tmp"
  if [ -n "$(ls -A "$d")" ]; then
    # Data written before the volume had a disk moves onto it, or the volume is refused.
    t=$(mktemp -d); mount -o loop "$img.tmp" "$t"; rmdir "$t/lost+found"
    if ! cp -a "$d/." "$t/"; then umount "$t"; rmdir "$t"; rm -f "$img.tmp"; echo "the volume's data does not fit in $bytes bytes" >&2; exit 5; fi
    umount "$t"; rmdir "$t"; find "$d" -mindepth 1 -delete
  fi
  mv "$img.tmp" "$img"
fi
chattr +i "$d"
mount -o loop,nosuid,nodev "$img" "$d"
# An empty disk stays empty, so Docker copies the image's /workspace (and its owner) onto it.
[ "$(ls -A "$d")" != lost+found ] || rmdir "$d/lost+found"`;

/** On the server: the disk unmounted (its loop device goes with it) and the folder removable again. */
const DETACH = `set -eu
d=$1
if mountpoint -q "$d"; then umount "$d"; fi
[ ! -d "$d" ] || chattr -i "$d"`;

async function runDiskHelper(docker: Docker, tools: ToolsImage, volume: string, script: string, args: string[]): Promise<void> {
  const [info, v] = await Promise.all([docker.info() as Promise<{ DockerRootDir?: string }>, docker.getVolume(volume).inspect()]);
  const root = info.DockerRootDir ?? '/var/lib/docker';
  if (!v.Mountpoint.startsWith(`${root}/volumes/`) || !v.Mountpoint.endsWith('/_data')) throw new Error(`volume ${volume} is not a local volume of the engine (${v.Mountpoint})`);
  const r = await runTool(docker, tools, {
    name: `${volume}-disk`,
    cmd: ['sh', '-c', ENTER, 'podex-disk', root, script, v.Mountpoint, ...args],
    binds: [],
    // Entering dockerd's mount namespace needs SYS_ADMIN, SYS_CHROOT and SYS_PTRACE (and the
    // host's process list); the loop devices (block 7:*, loop-control 10:237) are the only
    // devices it may open; LINUX_IMMUTABLE marks the folder under the mount; the rest let
    // mkfs and cp keep owners and modes. Not privileged: no other device, no other capability.
    capAdd: ['SYS_ADMIN', 'SYS_CHROOT', 'SYS_PTRACE', 'LINUX_IMMUTABLE', 'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID'],
    labels: { 'podex.volume': volume },
    hostConfig: { PidMode: 'host', DeviceCgroupRules: ['b 7:* rwm', 'c 10:237 rwm'] },
  });
  if (r.code === UNSUPPORTED) throw new VolumeDiskUnsupportedError(`the server cannot limit volume sizes: ${r.out.trim().slice(0, 300)}`);
  if (r.code !== 0) throw new Error(`disk of volume ${volume} failed (exit ${r.code}): ${r.out.trim().slice(0, 300)}`);
}

/** Gives `volume` its own filesystem of `bytes` (made once, mounted if not mounted): the volume's size limit. */
export function attachVolumeDisk(docker: Docker, tools: ToolsImage, volume: string, bytes: number): Promise<void> {
  if (!Number.isSafeInteger(bytes) || bytes < 16 << 20) throw new Error(`a volume disk needs at least 16 MiB (asked: ${bytes} bytes)`);
  return runDiskHelper(docker, tools, volume, ATTACH, [String(bytes)]);
}

/**
 * Removes `volume`, unmounting its disk first (Docker cannot remove a folder with a mount on
 * it). A volume that a container still uses is refused as Docker refuses it (409), before
 * anything is unmounted. Returns false when there was no such volume.
 */
export async function removeVolumeWithDisk(docker: Docker, tools: ToolsImage, volume: string): Promise<boolean> {
  try {
    await docker.getVolume(volume).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
  // Every workspace volume is detached, labelled or not: one made before disks had a label may have one.
  const users = await docker.listContainers({ all: true, filters: { volume: [volume] } });
  if (users.length > 0) throw Object.assign(new Error(`volume ${volume} is in use by ${users.map((c) => c.Names[0]).join(', ')}`), { statusCode: 409 });
  await runDiskHelper(docker, tools, volume, DETACH, []);
  try {
    await docker.getVolume(volume).remove();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

/**
 * The onboarding audit's check: a probe volume gets a 16 MiB disk and is removed again, as a
 * workspace volume would, so a server that cannot limit volumes is never given workspaces.
 */
export async function auditVolumeDisks(docker: Docker, tools: ToolsImage, volume: string): Promise<{ check: string; required: boolean; ok: boolean; detail: string }> {
  const check = 'volume disk limits';
  await docker.createVolume({ Name: volume, Labels: { 'podex.managed': 'true', 'podex.probe': 'true' } });
  try {
    await attachVolumeDisk(docker, tools, volume, 16 << 20);
    return { check, required: true, ok: true, detail: 'each workspace volume gets its own ext4 disk on a loop device' };
  } catch (err) {
    return { check, required: true, ok: false, detail: (err as Error).message };
  } finally {
    await removeVolumeWithDisk(docker, tools, volume).catch(() => undefined);
  }
}
