import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, truncateSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { DATA_VOLUME_RESOURCE, prepareDataVolume } from '../../activities/build/data-volume';
import { runImageBuild } from '../../activities/build/image-build';
import {
  hostOf,
  makeSourceImage,
  removeImage,
  standinImageBuilder,
  staticBuilder,
  testDir,
} from './builder-fixtures';
import { clientKeys, SshServer } from '../../scripts/servers/sshd';

const sh = (cmd: string) => execFileSync('sh', ['-c', cmd]).toString().trim();
const findmnt = (mp: string, col: string) => {
  try {
    return sh(`findmnt -n -o ${col} --mountpoint ${mp}`);
  } catch {
    return '';
  }
};

describe('data volume on a builder', () => {
  const rig = inject('rig');
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch {
        // best effort: the next cleanup still runs
      }
    }
  });

  /** A file-backed loop device: a real block device for mkfs and mount. */
  const loopDevice = (dir: string, mib: number) => {
    const file = path.join(dir, 'disk.img');
    writeFileSync(file, '');
    truncateSync(file, mib << 20);
    const dev = sh(`losetup -f --show ${file}`);
    cleanups.push(() => sh(`losetup -d ${dev}`));
    return dev;
  };
  const unmountLater = (mp: string) => cleanups.push(() => sh(`umount ${mp}`));

  it('formats the attached device, mounts it, grows tmpfs mounts, and leaves it alone on a second run', async () => {
    const dir = testDir(rig, 'dv-attached');
    const dev = loopDevice(dir, 128);
    const mountpoint = path.join(dir, 'containers');
    const tmp = path.join(dir, 'tmp');
    mkdirSync(tmp);
    sh(`mount -t tmpfs -o size=8M tmpfs ${tmp}`);
    unmountLater(tmp);
    unmountLater(mountpoint);
    cleanups.push(() =>
      rmSync(`/var/lib/bootc-release/data-volume${mountpoint.replace(/\//g, '_')}`, { force: true }),
    );
    const builder = staticBuilder(rig, dir, {
      dataVolume: { device: 'attached', mountpoint, tmpfs: { [tmp]: '16M' }, minFreeGiB: 0.05 },
    });
    const host = hostOf(rig.sshHosts[1], [{ kind: DATA_VOLUME_RESOURCE, id: dev }]);

    const first = await prepareDataVolume({ releaseId: 'r1', arch: 'x86_64', host, builder });
    expect(first).toMatchObject({
      configured: true,
      alreadyPrepared: false,
      device: dev,
      mountpoint,
      fsType: 'ext4',
    });
    expect(findmnt(mountpoint, 'SOURCE,FSTYPE')).toBe(`${dev} ext4`);
    expect(findmnt(tmp, 'OPTIONS')).toContain('size=16384k');
    expect(first.freeBytes).toBeGreaterThan(64 << 20);

    writeFileSync(path.join(mountpoint, 'kept'), 'still here');
    const second = await prepareDataVolume({ releaseId: 'r1', arch: 'x86_64', host, builder });
    expect(second).toMatchObject({ configured: true, alreadyPrepared: true, device: dev });
    expect(readFileSync(path.join(mountpoint, 'kept'), 'utf8')).toBe('still here');
    expect(sh(`findmnt -n -o SOURCE --mountpoint ${mountpoint} | wc -l`)).toBe('1');
  });

  it("turns the swap partition into an xfs data volume, as Fedora Copr's farm did, and finds it again after swapoff", async () => {
    const dir = testDir(rig, 'dv-swap');
    const dev = loopDevice(dir, 320);
    sh(`mkswap ${dev} >/dev/null && swapon ${dev}`);
    cleanups.push(() => {
      if (readFileSync('/proc/swaps', 'utf8').includes(dev)) sh(`swapoff ${dev}`);
    });
    // A builder whose only swap is the test's loop device, whatever swap this machine itself has.
    const builderVm = await SshServer.start(path.join(dir, 'vm'), '127.0.0.21', clientKeys(path.dirname(rig.privateKeyPath)), {
      swaps: `Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n${dev}\tpartition\t327676\t\t0\t\t-2\n`,
    });
    cleanups.push(() => builderVm.stop());
    const mountpoint = path.join(dir, 'containers');
    const marker = `/var/lib/bootc-release/data-volume${mountpoint.replace(/\//g, '_')}`;
    cleanups.push(() => rmSync(marker, { force: true }));
    const builder = staticBuilder(rig, dir, {
      dataVolume: { device: 'swap', mountpoint, fsType: 'xfs', minFreeGiB: 0.1 },
    });
    const host = hostOf(builderVm.host);

    const first = await prepareDataVolume({ releaseId: 'r2', arch: 'ppc64le', host, builder });
    expect(first).toMatchObject({ alreadyPrepared: false, device: dev, fsType: 'xfs' });
    expect(readFileSync('/proc/swaps', 'utf8')).not.toContain(dev);
    expect(builderVm.inNamespace(['findmnt', '-n', '-o', 'SOURCE,FSTYPE', '--mountpoint', mountpoint])).toBe(`${dev} xfs`);
    expect(existsSync(marker)).toBe(true);

    const second = await prepareDataVolume({ releaseId: 'r2', arch: 'ppc64le', host, builder });
    expect(second).toMatchObject({ alreadyPrepared: true, device: dev });
  });

  it('refuses, non-retryably and naming the config field, a volume with less free space than minFreeGiB', async () => {
    const dir = testDir(rig, 'dv-small');
    const dev = loopDevice(dir, 64);
    const mountpoint = path.join(dir, 'containers');
    unmountLater(mountpoint);
    cleanups.push(() =>
      rmSync(`/var/lib/bootc-release/data-volume${mountpoint.replace(/\//g, '_')}`, { force: true }),
    );
    const builder = staticBuilder(rig, dir, { dataVolume: { device: dev, mountpoint, minFreeGiB: 1 } });
    const err = await prepareDataVolume({
      releaseId: 'r3',
      arch: 's390x',
      host: hostOf(rig.sshHosts[1]),
      builder,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).message).toMatch(
      /GiB free, less than architectures\.s390x\.builder\.dataVolume\.minFreeGiB \(1\)/,
    );
  });

  it('a build that really fills the data volume fails non-retryably with the data volume hint', async () => {
    const dir = testDir(rig, 'dv-full');
    const dev = loopDevice(dir, 48);
    const mountpoint = path.join(dir, 'data');
    unmountLater(mountpoint);
    cleanups.push(() =>
      rmSync(`/var/lib/bootc-release/data-volume${mountpoint.replace(/\//g, '_')}`, { force: true }),
    );
    const source = makeSourceImage(dir, `localhost/bootc-release-test/dv-full:${process.pid}`);
    cleanups.push(() => removeImage(source));
    // The build's output lives on the data volume; the stand-in writes 64 MiB of data into a 48 MiB filesystem.
    const builder = staticBuilder(rig, dir, {
      dataVolume: { device: dev, mountpoint, minFreeGiB: 0.01 },
      workDir: path.join(mountpoint, 'bootc-release'),
    });
    const host = hostOf(rig.sshHosts[1]);
    await prepareDataVolume({ releaseId: 'r5', arch: 'aarch64', host, builder });
    const err = await runImageBuild(
      {
        releaseId: 'r5',
        arch: 'aarch64',
        host,
        builder,
        imageBuilder: standinImageBuilder(dir, { dataMiB: 64 }),
        imageRef: source,
        types: ['raw'],
      },
      { stagingDir: path.join(dir, 'staging'), pollIntervalMs: 200 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).message).toMatch(
      // The log lives on the full filesystem too, so dd's own "No space left on device" may never reach it.
      /ran out of space: "(.*No space left on device|\S+\/raw has \d+ bytes free)"; give architectures\.aarch64\.builder\.dataVolume more space/,
    );
  });

  it('does nothing when no data volume is configured', async () => {
    const dir = testDir(rig, 'dv-none');
    const result = await prepareDataVolume({
      releaseId: 'r4',
      arch: 'aarch64',
      host: hostOf(rig.sshHosts[1]),
      builder: staticBuilder(rig, dir),
    });
    expect(result).toMatchObject({ configured: false, alreadyPrepared: false });
  });
});
