// What the worker and the workflows use from the builder area.
export { createBuilderActivities, type BuilderActivities, type BuilderActivityDeps } from './activities';
export {
  bibRuns,
  groupRuns,
  OUTPUT_PATHS,
  type BibRun,
  type BibRunsInput,
  type ImageBuilderConfig,
} from './bib-runs';
export {
  prepareDataVolume,
  DATA_VOLUME_RESOURCE,
  type DataVolumeResult,
  type PrepareDataVolumeInput,
} from './data-volume';
export {
  prepareContainerImage,
  builtImageTag,
  type ContainerImage,
  type PrepareContainerImageInput,
} from './container-image';
export {
  runImageBuild,
  releaseWorkDir,
  type BuildProgress,
  type ImageBuildResult,
  type RunImageBuildInput,
  type RunImageBuildOptions,
} from './image-build';
