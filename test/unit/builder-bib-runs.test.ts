import { describe, expect, it } from 'vitest';
import { bibRuns, OUTPUT_PATHS } from '../../activities/build/bib-runs';
import { countManifestStages, noSpaceLine, progressMessage } from '../../activities/build/progress';
import { ImageBuilder } from '../../config/schema';

describe('bootc-image-builder command lines', () => {
  const imageBuilder = ImageBuilder.parse({});
  const workDir = '/var/tmp/bootc-release/r1/x86_64';

  it('runs podman exactly as docs/contracts.md documents, with ami and raw in separate output directories', () => {
    const runs = bibRuns(imageBuilder, {
      types: ['ami', 'raw'],
      imageRef: 'localhost/src:1',
      workDir,
      configPath: `${workDir}/config.toml`,
    });
    expect(runs.map((r) => r.argv)).toEqual(
      ['ami', 'raw'].map((t) => [
        'podman',
        'run',
        '--rm',
        '--privileged',
        '--pull=newer',
        '--security-opt',
        'label=type:unconfined_t',
        '-v',
        `${workDir}/config.toml:/config.toml:ro`,
        '-v',
        `${workDir}/${t}/output:/output`,
        '-v',
        '/var/lib/containers/storage:/var/lib/containers/storage',
        'quay.io/centos-bootc/bootc-image-builder:latest',
        '--type',
        t,
        '--rootfs',
        'xfs',
        '--progress',
        'verbose',
        'localhost/src:1',
      ]),
    );
    expect(runs.flatMap((r) => r.artifacts)).toEqual([
      { type: 'ami', path: `${workDir}/ami/output/image/disk.raw` },
      { type: 'raw', path: `${workDir}/raw/output/image/disk.raw` },
    ]);
  });

  it('builds every other type in one run, prefixes the configured engine, and adds extra arguments before the image', () => {
    const custom = ImageBuilder.parse({
      engine: ['sudo', 'podman'],
      rootfs: 'ext4',
      extraArgs: ['--target-arch=aarch64'],
      image: 'registry.example/bib:1',
    });
    const [run, ...rest] = bibRuns(custom, {
      types: ['qcow2', 'ami', 'vmdk', 'vhd', 'gce'],
      imageRef: 'quay.io/o/i:t',
      workDir,
    });
    expect(rest).toEqual([]);
    expect(run.name).toBe('qcow2-ami-vmdk-vhd-gce');
    expect(run.argv.slice(0, 3)).toEqual(['sudo', 'podman', 'run']);
    expect(run.argv).not.toContain('/config.toml:ro');
    expect(run.argv.slice(run.argv.indexOf('registry.example/bib:1'))).toEqual([
      'registry.example/bib:1',
      '--type',
      'qcow2',
      '--type',
      'ami',
      '--type',
      'vmdk',
      '--type',
      'vhd',
      '--type',
      'gce',
      '--rootfs',
      'ext4',
      '--progress',
      'verbose',
      '--target-arch=aarch64',
      'quay.io/o/i:t',
    ]);
    expect(run.artifacts.map((a) => a.path.slice(run.outputDir.length + 1))).toEqual([
      'qcow2/disk.qcow2',
      'image/disk.raw',
      'vmdk/disk.vmdk',
      'vpc/disk.vhd',
      'gce/image.tar.gz',
    ]);
    expect(OUTPUT_PATHS.iso).toBe('bootiso/install.iso');
  });
});

describe('bootc-image-builder progress', () => {
  it('counts the stages of an osbuild v2 manifest and names the current one without its id', () => {
    expect(
      countManifestStages(
        '{"version":"2","pipelines":[{"name":"build","stages":[{},{}]},{"name":"image","stages":[{}]}]}',
      ),
    ).toBe(3);
    expect(countManifestStages('not json')).toBeUndefined();
    expect(progressMessage(`org.osbuild.selinux: ${'a'.repeat(64)} {`)).toBe('org.osbuild.selinux');
    expect(progressMessage(`Pipeline image: ${'b'.repeat(64)}`)).toBe('Pipeline image');
  });

  it('recognises running out of space in the log', () => {
    expect(noSpaceLine('ok\nerror: write /var/tmp/x: No space left on device\nFailed')).toBe(
      'error: write /var/tmp/x: No space left on device',
    );
    expect(noSpaceLine('error: cannot run osbuild: exit status 1')).toBeUndefined();
  });
});
