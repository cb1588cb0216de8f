// The bootc-image-builder command lines for one architecture (docs/contracts.md#bootc-image-builder). One run builds
// every requested type, except that `ami` and `raw` both write image/disk.raw, so `raw` gets a run (and an output
// directory) of its own.
import path from 'node:path/posix';
import type { ImageType, ReleaseDefinition } from '../../config/schema';

export type ImageBuilderConfig = ReleaseDefinition['imageBuilder'];

/** Where bootc-image-builder writes each type, relative to /output. */
export const OUTPUT_PATHS: Record<ImageType, string> = {
  ami: 'image/disk.raw',
  raw: 'image/disk.raw',
  qcow2: 'qcow2/disk.qcow2',
  vmdk: 'vmdk/disk.vmdk',
  vhd: 'vpc/disk.vhd',
  gce: 'gce/image.tar.gz',
  iso: 'bootiso/install.iso',
};

/** Where the container storage lives on the builder; bib reads the source image from it. */
export const CONTAINER_STORAGE = '/var/lib/containers/storage';

export interface BibRun {
  /** Types joined by "-": also the run's directory name. */
  name: string;
  types: ImageType[];
  /** `<workDir>/<name>`: holds output/, build.log, pid, exit-code. */
  runDir: string;
  outputDir: string;
  argv: string[];
  /** Where each type lands on the builder. */
  artifacts: { type: ImageType; path: string }[];
}

export interface BibRunsInput {
  types: ImageType[];
  /** The source image as it is named in the builder's container storage. */
  imageRef: string;
  /** Directory for this release and architecture on the builder: `<builder.workDir>/<releaseId>/<arch>`. */
  workDir: string;
  /** config.toml on the builder; without it no /config.toml is mounted. */
  configPath?: string;
}

export function groupRuns(types: ImageType[]): ImageType[][] {
  const unique = [...new Set(types)];
  if (unique.includes('ami') && unique.includes('raw')) return [unique.filter((t) => t !== 'raw'), ['raw']];
  return unique.length ? [unique] : [];
}

export function bibRuns(imageBuilder: ImageBuilderConfig, input: BibRunsInput): BibRun[] {
  return groupRuns(input.types).map((types) => {
    const name = types.join('-');
    const runDir = path.join(input.workDir, name);
    const outputDir = path.join(runDir, 'output');
    const argv = [
      ...imageBuilder.engine,
      'run',
      '--rm',
      '--privileged',
      '--pull=newer',
      '--security-opt',
      'label=type:unconfined_t',
      ...(input.configPath ? ['-v', `${input.configPath}:/config.toml:ro`] : []),
      '-v',
      `${outputDir}:/output`,
      '-v',
      `${CONTAINER_STORAGE}:${CONTAINER_STORAGE}`,
      imageBuilder.image,
      ...types.flatMap((t) => ['--type', t]),
      '--rootfs',
      imageBuilder.rootfs,
      '--progress',
      'verbose',
      ...imageBuilder.extraArgs,
      input.imageRef,
    ];
    return {
      name,
      types,
      runDir,
      outputDir,
      argv,
      artifacts: types.map((type) => ({ type, path: path.join(outputDir, OUTPUT_PATHS[type]) })),
    };
  });
}
