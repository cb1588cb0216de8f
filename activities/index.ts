// All activities of a release, composed from the per-system factories. Workflows import only the *type*
// ReleaseActivities; worker/wiring.ts builds the real dependencies and tests build the same with the rig's peers.
import type { Arch, Builder, ReleasePlan, Target } from '../config/schema';
import type { BuilderActivities } from './build';
import type { createFetchActivities } from './fetch/activities';
import { pinFirstHostKey } from './ssh/host-key-pinning';
import { credentialsOf } from './ssh/builder-session';
import { createActivationActivities } from './activation';
import { createChannelActivities, type ChannelGateway } from './channels-client';
import { previousDetails, withHeartbeats } from './runtime/heartbeat';
import type { NotifyActivities } from './notify/activities';
import { checkTrigger, type TriggerCheck, type TriggerDeps } from './source/trigger';
import { deleteStaleBuilder, findStaleBuilders, type ReleaseLookup, type StaleBuilder } from './janitor/stale-builders';
import type { createStagingCleanup } from './fetch/staged-cleanup';
import { findCancelledPublishes } from './janitor/cancelled-publishes';
import { preflight } from './plan/preflight';
import { requireDriver, requireProvider, type BuilderProviders, type PublishTargets } from './registry';
import { resolvePlan, type ResolvePlanInput } from './plan/resolve-plan';
import { createRetentionActivities, type ApplyRetentionInput, type PlanRetentionInput, type RestoreImagesInput, type RetentionDeps } from './retention/activities';
import type {
  ActivationDrivers,
  BuilderHost,
  BuilderProvider,
  BuiltArtifact,
  Candidate,
  PublishRequest,
  PublishScope,
  PublishTargetDriver,
  StagedArtifact,
} from './types';

/** What happens on a builder once it is up: activities/build and the fetch in activities/fetch. */
export type BuilderSteps = Pick<BuilderActivities, 'prepareDataVolume' | 'prepareContainerImage' | 'runImageBuild'> &
  Pick<ReturnType<typeof createFetchActivities>, 'fetchArtifacts'> &
  ReturnType<typeof createStagingCleanup>;

export interface ActivityDeps {
  /** Where release definitions named from the Temporal UI are found. */
  definitionsDir: string;
  /** Whether a definition sent whole in the start input may run when the definitions directory has no equal one. */
  allowInlineDefinitions?: boolean;
  /** Each under its kind, typed for that kind's builders and targets. */
  providers: BuilderProviders;
  targets: PublishTargets;
  steps: BuilderSteps;
  notify: NotifyActivities;
  /** Source fingerprints and earlier releases, for triggers (activities/source). */
  trigger: Omit<TriggerDeps, 'definitionsDir'>;
  /** Release states and ids from Temporal, for the janitor. */
  releases: ReleaseLookup;
  /** One driver per activation kind (activities/activation): preflight checks them all, `activate` runs a channel's. */
  activations: ActivationDrivers;
  /** The channel workflows, through the worker's Temporal client (absent when wired without one). */
  channels?: ChannelGateway;
  /** Channel states and releases from Temporal, and this worker's staging directory, for retention. */
  retention: Omit<RetentionDeps, 'definitionsDir' | 'targets'>;
}

interface ArchStep {
  plan: ReleasePlan;
  arch: Arch;
}

const builderOf = (plan: ReleasePlan, arch: Arch) => plan.definition.architectures[arch]!.builder;

export function createActivities(deps: ActivityDeps) {
  const provider = (builder: Builder): BuilderProvider => requireProvider(deps.providers, builder);
  const driver = (target: Target): PublishTargetDriver => requireDriver(deps.targets, target);
  const step = ({ plan, arch }: ArchStep) => ({ releaseId: plan.releaseId, arch, builder: builderOf(plan, arch) });
  const retention = createRetentionActivities({ definitionsDir: deps.definitionsDir, targets: deps.targets, ...deps.retention });

  return {
    resolvePlan: (input: ResolvePlanInput) => resolvePlan(deps, input),
    preflight: ({ plan }: { plan: ReleasePlan }) => preflight(deps, plan),

    /** The host comes back with its SSH host key pinned: from the cloud (config, console) or the first one seen. */
    acquireBuilder: (i: ArchStep) => {
      const builder = builderOf(i.plan, i.arch);
      const previous = previousDetails();
      return withHeartbeats(async () =>
        pinFirstHostKey(await provider(builder).acquire(builder, { releaseId: i.plan.releaseId, arch: i.arch }), credentialsOf(builder), { previous }),
      );
    },
    /** Without a host (an acquire cancelled or failed midway) the provider finds what it made by tag or name. */
    releaseBuilder: (i: ArchStep & { host?: BuilderHost }) => {
      const builder = builderOf(i.plan, i.arch);
      const host: BuilderHost = i.host ?? { provider: builder.provider, id: '', address: '', port: 0, user: '', resources: [] };
      return withHeartbeats(() => provider(builder).release(builder, { releaseId: i.plan.releaseId, arch: i.arch }, host));
    },

    prepareDataVolume: (i: ArchStep & { host: BuilderHost }) => deps.steps.prepareDataVolume({ ...step(i), host: i.host }),
    prepareContainerImage: (i: ArchStep & { host: BuilderHost }) =>
      deps.steps.prepareContainerImage({
        ...step(i),
        host: i.host,
        source: i.plan.definition.source,
        imageBuilder: i.plan.definition.imageBuilder,
      }),
    runImageBuild: (i: ArchStep & { host: BuilderHost; imageRef: string }) =>
      deps.steps.runImageBuild({
        ...step(i),
        host: i.host,
        imageRef: i.imageRef,
        imageBuilder: i.plan.definition.imageBuilder,
        types: i.plan.definition.architectures[i.arch]!.types,
      }),
    fetchArtifacts: (i: ArchStep & { host: BuilderHost; artifacts: BuiltArtifact[] }) =>
      deps.steps.fetchArtifacts({ ...step(i), host: i.host, artifacts: i.artifacts }),

    publishArtifact: (request: PublishRequest) => withHeartbeats(() => driver(request.target).publish(request)),
    deleteCandidate: ({ target, candidate }: { target: Target; candidate: Candidate }) =>
      withHeartbeats(() => driver(target).delete(target, candidate)),
    /** A cancelled release: whatever it made at one target, finished or half-uploaded, found by tag or name. */
    deletePublished: ({ target, scope }: { target: Target; scope: PublishScope }) =>
      withHeartbeats(() => driver(target).deleteRelease(target, scope)),
    /** Runs on the staging queue of the worker that holds the files. */
    deleteStagedArtifacts: (i: { releaseId: string; artifacts: StagedArtifact[] }) => deps.steps.deleteStagedArtifacts(i),

    activate: createActivationActivities(deps.activations).activate,
    ...createChannelActivities({ definitionsDir: deps.definitionsDir, allowInlineDefinitions: deps.allowInlineDefinitions, gateway: deps.channels }),
    notifyRelease: deps.notify.notifyRelease,
    checkTrigger: (check: TriggerCheck) => checkTrigger({ ...deps.trigger, definitionsDir: deps.definitionsDir }, check),

    findStaleBuilders: (input: { ttlMs: number; now: string }) => findStaleBuilders(deps, input),
    deleteStaleBuilder: (item: StaleBuilder) => deleteStaleBuilder(deps, item),
    findCancelledPublishes: () => findCancelledPublishes(deps),

    /** Retention (docs/retention.md): the plan changes nothing; apply does one item; restore undoes deprecations. */
    planRetention: (input: PlanRetentionInput) => withHeartbeats(() => retention.planRetention(input)),
    applyRetention: (input: ApplyRetentionInput) => withHeartbeats(() => retention.applyRetention(input)),
    restoreImages: (input: RestoreImagesInput) => withHeartbeats(() => retention.restoreImages(input)),
  };
}

export type ReleaseActivities = ReturnType<typeof createActivities>;
