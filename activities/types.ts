// Shapes that cross the workflow/activity boundary. They live in workflow histories, so they stay small and
// secret-free: credentials are referenced by name, files by path on a worker.
import type { NotifyEvent } from '../config/notifications';
import type { Activation, Arch, Builder, ImageType, ReleasePlan, Target } from '../config/schema';
import type { AssignmentKind } from './channels';

/** What every step knows about where it is. Every created resource carries releaseId (tag or name). */
export interface StepContext {
  releaseId: string;
  arch: Arch;
}

/** A builder machine as the workflow remembers it: enough to reconnect and to tear down. */
export interface BuilderHost {
  provider: Builder['provider'];
  /** Provider's id: instance id, domain name, ticket, or address for static hosts. */
  id: string;
  address: string;
  port: number;
  user: string;
  /** Host key pinned for every later connection ("ssh-ed25519 AAAA..."). */
  hostKey?: string;
  /** Resources to delete on release (volumes, NICs...), by provider-specific kind. */
  resources: { kind: string; id: string; region?: string }[];
}

export interface CheckResult {
  ok: boolean;
  /** Plain sentences: "Checking bucket permissions…", "Upload conditions met." */
  messages: string[];
}

/** A builder provider: preflight, idempotent acquire (look up by release tag first), guaranteed release. */
export interface BuilderProvider<B extends Builder = Builder> {
  check(builder: B, ctx: StepContext): Promise<CheckResult>;
  acquire(builder: B, ctx: StepContext): Promise<BuilderHost>;
  release(builder: B, ctx: StepContext, host: BuilderHost): Promise<void>;
  /** Every builder resource this provider created, for any release (found by tag or name), for the janitor. */
  listOwned?(builder: B): Promise<OwnedResource[]>;
  deleteOwned?(builder: B, resource: OwnedResource): Promise<void>;
}

/** Tag keys (AWS) that mark what bootc-release created; elsewhere the name does (activities/naming.ts). */
export const TAGS = { releaseId: 'bootc-release:release-id', arch: 'bootc-release:arch', step: 'bootc-release:step' } as const;
export { resourceName } from './naming';

export interface OwnedResource {
  kind: string;
  id: string;
  /** The whole release id, when the provider holds it for certain (a tag, a claim file); else the janitor reads `name`. */
  releaseId?: string;
  /** The name resourceName(releaseId, arch, 'builder') gave the resource, for the janitor to attribute it. */
  name?: string;
  arch?: string;
  region?: string;
  /** ISO time, when the provider knows it. */
  createdAt?: string;
}

/** One file bootc-image-builder produced, on the builder. */
export interface BuiltArtifact {
  type: ImageType;
  /** Absolute path on the builder. */
  remotePath: string;
  size: number;
  sha256: string;
  /** From the same pass as sha256 when the builder has python3: lets the fetch hash data only (docs/fetch.md). */
  sparseSha256?: string;
}

/** One artifact fetched into a worker's staging directory. */
export interface StagedArtifact {
  arch: Arch;
  type: ImageType;
  /** Absolute path on the worker that fetched it. */
  path: string;
  /** Apparent size in bytes. */
  size: number;
  /** Bytes that are data (not holes). */
  dataBytes: number;
  sha256: string;
  /** Task queue of the worker that holds the file: publish activities run there. */
  stagingQueue: string;
}

/** An image published to a target: one row of the "images to use or ignore" table. */
export interface Candidate {
  arch: Arch;
  target: string;
  kind: Target['kind'];
  region?: string;
  /** Host for libvirt, the cloud's image id elsewhere, the path for directory targets. */
  imageId: string;
  name: string;
  type: ImageType;
  size: number;
  sha256: string;
  /** Backing resources that `delete` removes too (snapshots, COS objects). */
  resources?: { kind: string; id: string; region?: string }[];
}

export interface PublishRequest {
  releaseId: string;
  arch: Arch;
  targetName: string;
  target: Target;
  artifact: StagedArtifact;
  /** `<name>-<arch>-YYYYMMDD_HHMMSS` */
  imageName: string;
}

/** Where one release published (or began to publish) one architecture's artifacts to one target. */
export interface PublishScope {
  releaseId: string;
  arch: Arch;
  targetName: string;
  /** The image names the release used there (`PublishRequest.imageName`), for targets that find by name. */
  imageNames: string[];
}

/**
 * A publish target: preflight, idempotent publish (resumes from heartbeat progress), delete for retention, and
 * deleteRelease for a release cancelled midway: everything it made there, finished or not, found by tag or name
 * (partial uploads too). Returns what it deleted, one short line each.
 */
export interface PublishTargetDriver<T extends Target = Target> {
  check(target: T, ctx: { releaseId: string; targetName: string }): Promise<CheckResult>;
  publish(request: PublishRequest & { target: T }): Promise<Candidate[]>;
  delete(target: T, candidate: Candidate): Promise<void>;
  deleteRelease(target: T, scope: PublishScope): Promise<string[]>;
  /** Every release that left something at the target, found by its tags; for the janitor (targets that tag). */
  listReleases?(target: T, targetName: string): Promise<PublishScope[]>;
}

export type { ReleasePlan };

/** An image map value: one image id, or ids by region (`us_east_1`) or image type. */
export type ImageMapValue = string | Record<string, string>;

/**
 * One entry an activation changed: `path` is [target, arch] or [target, arch, region|type] in an image map, or
 * [parameter name, region] for SSM. `previous` absent: the entry did not exist (a rollback deletes it).
 */
export interface ReplacedEntry {
  path: string[];
  previous?: ImageMapValue;
  value: ImageMapValue;
}

export interface ActivationRecord {
  channel: string;
  /** The entries this release activated: target → arch → (region|type →) image id. Other entries were kept. */
  imageMap: Record<string, unknown>;
  /** Exactly what each activation target held before in the entries it changed (for rollback and the audit trail). */
  replaced: { target: string; entries: ReplacedEntry[] }[];
  writtenTo: string[];
  at: string;
}

/** Activation kinds, and the configuration of each: what the driver registry is keyed by. */
export type ActivationKind = Activation['kind'];
export type ActivationConfigs = { [K in ActivationKind]: Extract<Activation, { kind: K }> };

/** One activation step of a channel, as its driver sees it. */
export interface ActivationStep {
  plan: ReleasePlan;
  channel: string;
  /** Its place in the channel, and the config path errors name: `channels.<channel>.activation.<index>`. */
  index: number;
  where: string;
  candidates: Candidate[];
  approvedBy: string;
  /** The channel's assignment being activated (absent for releases activated before channels). */
  assignment?: { seq: number; kind: AssignmentKind };
  /** What the steps before this one replaced, in order (the hook passes it on). */
  replaced: ActivationRecord['replaced'];
  /** target → arch → (region|type →) image: what the channel's first image map held in the release's entries before. */
  previousImageMap?: Record<string, unknown>;
  signal?: AbortSignal;
}

/**
 * An activation target, the third driver beside builder providers and publish targets: a preflight check that writes
 * nothing, and an activation that merges the release's entries and returns exactly what it replaced, never dropping
 * an entry it does not own. Every step's `writesTo` runs before the first step writes: it names where the step writes
 * and refuses, with the config path, what it could not write for the chosen images.
 */
export interface ActivationDriver<A extends Activation = Activation> {
  check(activation: A, ctx: { plan: ReleasePlan; where: string }): Promise<CheckResult>;
  writesTo(activation: A, step: ActivationStep): string;
  activate(activation: A, step: ActivationStep): Promise<ReplacedEntry[]>;
  /** One short line: "image map copr_builder_images in git repository X (branch main), file Y". */
  describe(activation: A): string;
  /** Whether it writes an image map: the first one's replaced entries are the previous map the hook gets. */
  readonly writesImageMap: boolean;
}

/** One driver per activation kind, checked by the compiler (a kind without a driver, or the wrong one, fails to build). */
export type ActivationDrivers = { [K in ActivationKind]: ActivationDriver<ActivationConfigs[K]> };


/** One thing that happened to a release, as notification sinks receive it (activities/notify). */
export interface ReleaseEvent {
  event: NotifyEvent;
  releaseId: string;
  definition: string;
  arches: string[];
  stage: string;
  /** ISO time of the event (workflow time). */
  at: string;
  candidates?: Pick<Candidate, 'arch' | 'target' | 'imageId' | 'region'>[];
  error?: string;
  by?: string;
  /** Why a trigger started or skipped a release. */
  reason?: string;
  /** Link to the release in the Temporal Web UI, when the worker knows the UI's address. */
  url?: string;
}
