// Every workflow the worker registers. Bundled by Temporal into its deterministic sandbox.
export { imageRelease } from './image-release';
export { archBuild } from './arch-build';
export { builderJanitor } from './builder-janitor';
export { releaseTrigger } from './release-trigger';
export { imageChannel } from './channel';
