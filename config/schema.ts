// The release definition: one zod schema, every type in the project is inferred from it.
// Objects are strict, so a misspelt key (or a secret pasted where a reference belongs) is an error, not ignored.
import { z } from 'zod';
import { ARCHES, AWS_ARCHES, IMAGE_TYPES, TARGET_TYPES } from './constants';
import {
  absPath,
  argv,
  duration,
  durationMs,
  envName,
  gitRef,
  gitRepository,
  hostKey,
  hostName,
  imageRef,
  name,
  noUserInfo,
  plainWord,
  relativePath,
  sshUser,
  unique,
  url,
  workerPath,
} from './fields';
import { Notification } from './notifications';

export { ARCHES, IMAGE_TYPES, TARGET_TYPES };
export { NAME_PATTERN, name, absPath, duration, durationMs } from './fields';

/** libvirt connection URI on the hypervisor; `qemu+ssh://root@host/system` names a login, never a password. */
const libvirtUri = () =>
  noUserInfo(
    z.string().regex(/^[a-z0-9+]+:\/\/[A-Za-z0-9._~@:/?=,%+-]*$/, 'must be a libvirt URI like qemu:///system (no spaces, quotes or shell metacharacters)'),
  ).default('qemu:///system');

/**
 * Worker environment variables a command run on the worker may see, by name. Commands get these plus PATH, HOME
 * and LANG, never the worker's whole environment (which holds every cloud credential the worker has).
 */
const passEnv = () => unique(envName()).default([]);


export const Arch = z.enum(ARCHES);
export type Arch = z.infer<typeof Arch>;

export const ImageType = z.enum(IMAGE_TYPES);
export type ImageType = z.infer<typeof ImageType>;

export const Source = z.union(
  [
    z.strictObject({ image: imageRef() }),
    z.strictObject({
      git: gitRepository(),
      ref: gitRef().default('main'),
      containerfile: relativePath().default('Containerfile'),
      context: relativePath().default('.'),
    }),
  ],
  { error: (issue) => (issue.input === undefined ? 'required' : 'must be {image: REF} or {git: URL, ref?, containerfile?, context?}') },
);
export type Source = z.infer<typeof Source>;

export const ImageBuilder = z.strictObject({
  image: imageRef().default('quay.io/centos-bootc/bootc-image-builder:latest'),
  rootfs: z.enum(['xfs', 'ext4', 'btrfs']).default('xfs'),
  /** A bootc-image-builder config.toml on the worker; it is copied to the builder. */
  config: absPath().optional(),
  /**
   * The container engine command that runs bootc-image-builder. Production leaves it at `podman`; a rig or a host
   * with a wrapped engine may point it elsewhere. The arguments after it are always the documented ones.
   */
  engine: z.array(plainWord()).min(1).default(['podman']),
  extraArgs: z.array(z.string().regex(/^[A-Za-z0-9=._/:,-]+$/, 'must be a plain argument')).default([]),
  timeout: duration('2d').default('6h'),
});

export type ImageBuilderConfig = z.infer<typeof ImageBuilder>;

const Ssh = z.strictObject({
  user: sshUser().default('root'),
  port: z.number().int().min(1).max(65535).default(22),
  /** Path of the private key on the worker; the key itself never enters a workflow. */
  privateKeyPath: z.string().min(1).optional(),
  /** Env var holding the private key path or PEM, for workers configured through the environment. */
  privateKeyEnv: envName().optional(),
  /** Pinned host key ("ssh-ed25519 AAAA..."), when known in advance. Otherwise trust on first use, then enforced. */
  hostKey: hostKey().optional(),
  connectTimeout: duration('10m').default('20s'),
});

const DataVolume = z.strictObject({
  /** `swap` takes the device from /proc/swaps (what Fedora Copr's farm did), `attached` the provider's extra volume. */
  device: z.union([z.enum(['swap', 'attached']), absPath()]).default('swap'),
  mountpoint: absPath().default('/var/lib/containers'),
  fsType: z.enum(['ext4', 'xfs']).default('ext4'),
  /** Size of the extra volume a cloud provider attaches (aws). */
  sizeGiB: z.number().int().min(8).max(16384).optional(),
  /** Remount these tmpfs mounts with a new size, e.g. { "/run": "3G", "/tmp": "8G" }. */
  tmpfs: z.record(absPath(), z.string().regex(/^[1-9]\d{0,6}[KMG]$/, 'must be a size like 3G')).default({}),
  /** Fail the step early when the data volume has less free space. */
  minFreeGiB: z.number().min(0).max(65536).default(20),
});

const BuilderCommon = {
  ssh: Ssh.prefault({}),
  dataVolume: DataVolume.optional(),
  /** Where the build runs on the builder: config, output, logs. */
  workDir: absPath().default('/var/tmp/bootc-release'),
  keepBuilderOnFailure: z.boolean().default(false),
  /** Task queue of a worker that can reach this builder (per-site workers); default: the release's queue. */
  taskQueue: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,199}$/, 'must be a task queue name (letters, digits and ._@:/-)').optional(),
};

const StaticHost = z.strictObject({
  address: hostName(),
  port: z.number().int().min(1).max(65535).optional(),
  user: sshUser().optional(),
  hostKey: hostKey().optional(),
});

const AwsCredentials = z.strictObject({
  profile: z.string().optional(),
  roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, 'must be an IAM role ARN').optional(),
  /** Endpoint override (moto, LocalStack, VPC endpoints). */
  endpoint: url().optional(),
});

export const Builder = z.discriminatedUnion('provider', [
  z.strictObject({
    provider: z.literal('static'),
    hosts: unique(StaticHost, (h) => `${h.address}:${h.port ?? 22}`).min(1),
    ...BuilderCommon,
  }),
  z.strictObject({
    provider: z.literal('aws'),
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region like us-east-1'),
    instanceType: z.string().regex(/^[a-z0-9]+\.[a-z0-9]+$/, 'must be an instance type like c7i.xlarge'),
    ami: z.string().regex(/^ami-[0-9a-f]+$/, 'must be an AMI id'),
    subnet: z.string().regex(/^subnet-[0-9a-f]+$/, 'must be a subnet id').optional(),
    securityGroups: unique(z.string().regex(/^sg-[0-9a-f]+$/, 'must be a security group id')).default([]),
    keyName: z.string().optional(),
    instanceProfile: z.string().optional(),
    credentials: AwsCredentials.prefault({}),
    ...BuilderCommon,
  }),
  z.strictObject({
    provider: z.literal('ibmcloud'),
    region: z.string().regex(/^[a-z]{2}-[a-z]+$/, 'must be an IBM Cloud region like us-east'),
    zone: z.string().regex(/^[a-z]{2}-[a-z]+-\d$/, 'must be a zone like us-east-1'),
    profile: z.string().regex(/^[a-z0-9]+-\d+x\d+$/, 'must be an instance profile like bz2-4x16'),
    image: z.string().min(1),
    vpc: z.string().min(1),
    subnet: z.string().min(1),
    keys: unique(z.string().min(1)).min(1),
    resourceGroup: z.string().optional(),
    /** Give the builder a floating IP and reach it there: needed when the worker is outside the VPC. Default: the primary IP. */
    floatingIp: z.boolean().optional(),
    apiKeyEnv: envName().default('IBMCLOUD_API_KEY'),
    /** Endpoint overrides (private endpoints, the test stand-in); `{region}` in `endpoint` is replaced by the region. */
    endpoint: url().optional(),
    iamEndpoint: url().optional(),
    ...BuilderCommon,
  }),
  z.strictObject({
    provider: z.literal('libvirt'),
    host: hostName(),
    /** SSH access to the hypervisor itself (virsh runs there). */
    hypervisorSsh: Ssh.prefault({}),
    pool: name().default('images'),
    baseVolume: name(),
    memoryMiB: z.number().int().min(512).max(4_194_304).default(8192),
    vcpus: z.number().int().min(1).max(1024).default(4),
    network: name().default('default'),
    diskSizeGiB: z.number().int().min(10).max(65536).default(60),
    /** libvirt connection URI on the hypervisor. */
    uri: libvirtUri(),
    ...BuilderCommon,
  }),
  z.strictObject({
    provider: z.literal('command'),
    /** Prints a ticket/handle on stdout (e.g. `resalloc ticket --tag arch_x86_64`). */
    acquire: argv(),
    /** Given the handle as its last argument, waits and prints the host address (e.g. `resalloc ticket-wait`). */
    wait: argv().optional(),
    /** Given the handle as its last argument, releases it (e.g. `resalloc ticket-close`). */
    release: argv(),
    passEnv: passEnv(),
    ...BuilderCommon,
  }),
]);
export type Builder = z.infer<typeof Builder>;

export const ArchitectureSpec = z.strictObject({
  builder: Builder,
  types: unique(ImageType).min(1),
  targets: unique(name()).min(1, 'needs at least one target (an architecture whose images go nowhere builds for nothing)'),
});

export const Target = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('directory'),
    path: workerPath(),
  }),
  z.strictObject({
    kind: z.literal('aws'),
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region like us-east-1'),
    method: z.enum(['ebs-direct', 's3-import']).default('ebs-direct'),
    /** Required for s3-import: the bucket the image is staged in. */
    bucket: z.string().optional(),
    copyTo: unique(z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region')).default([]),
    shareWith: unique(z.string().regex(/^\d{12}$/, 'must be a 12-digit AWS account id')).default([]),
    bootMode: z.enum(['uefi-preferred', 'uefi', 'legacy-bios']).default('uefi-preferred'),
    credentials: AwsCredentials.prefault({}),
  }),
  z.strictObject({
    kind: z.literal('ibmcloud'),
    /** Regions that get a VPC custom image; the first is where the COS bucket lives unless cosRegion says. */
    regions: unique(z.string().regex(/^[a-z]{2}-[a-z]+$/, 'must be an IBM Cloud region')).min(1),
    cosBucket: z.string().min(3),
    cosRegion: z.string().optional(),
    resourceGroup: z.string().optional(),
    operatingSystem: z.string().default('fedora-40-s390x'),
    apiKeyEnv: envName().default('IBMCLOUD_API_KEY'),
    /** COS HMAC keys are referenced by env var name. */
    cosAccessKeyEnv: envName().default('IBMCLOUD_COS_ACCESS_KEY_ID'),
    cosSecretKeyEnv: envName().default('IBMCLOUD_COS_SECRET_ACCESS_KEY'),
    cosEndpoint: url().optional(),
    endpoint: url().optional(),
    iamEndpoint: url().optional(),
  }),
  z.strictObject({
    kind: z.literal('libvirt'),
    hosts: unique(hostName()).min(1),
    ssh: Ssh.prefault({}),
    pool: name().default('images'),
    format: z.enum(['raw', 'qcow2']).default('raw'),
    uri: libvirtUri(),
  }),
  z.strictObject({
    kind: z.literal('openstack'),
    /** Keystone v3 URL; omit with `imageUrl` + `tokenEnv` for a pre-issued token. */
    authUrl: url().optional(),
    /** Prefix of the OS_* style variables on the worker: OSUOSL → OSUOSL_USERNAME, OSUOSL_PASSWORD, ... */
    credentialsEnv: envName().optional(),
    tokenEnv: envName().optional(),
    /** Glance endpoint; from the Keystone catalog when omitted. */
    imageUrl: url().optional(),
    visibility: z.enum(['private', 'shared', 'community', 'public']).default('private'),
    diskFormat: z.enum(['raw', 'qcow2']).optional(),
    /**
     * TESTS AND LOCAL DEVELOPMENT ONLY: no token; sends the identity as X-Identity-Status/X-User-Id/X-Project-Id/
     * X-Roles headers, which only a glance-api running the `fakeauth` paste pipeline (the rig, the demo) believes.
     */
    testIdentityHeaders: z
      .strictObject({ userId: z.string().min(1), projectId: z.string().min(1), roles: unique(z.string().min(1)).default(['member', 'reader']) })
      .optional(),
  }),
]);
export type Target = z.infer<typeof Target>;

export const Activation = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('image-map-file'),
    /** Local path on the worker, or `host:/path` reached over SSH with `ssh` (its `hostKey` is required then). */
    path: workerPath(),
    /** Key under which the image map is written (Fedora Copr's farm: copr_builder_images). */
    key: z.string().default('copr_builder_images'),
    ssh: Ssh.optional(),
  }),
  z.strictObject({
    kind: z.literal('image-map-git'),
    /** A git URL or a path on the worker; push access comes from the worker's own git/SSH setup, never from the URL. */
    repository: gitRepository(),
    branch: gitRef().default('main'),
    file: relativePath(),
    key: z.string().default('copr_builder_images'),
  }),
  z.strictObject({
    kind: z.literal('ssm-parameter'),
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region like us-east-1'),
    /** Parameter name; {arch} is replaced per architecture. */
    name: z.string().regex(/^[A-Za-z0-9_.\/{}-]{1,1011}$/, 'must be an SSM parameter name like /copr/builder-image/{arch}'),
    credentials: AwsCredentials.prefault({}),
  }),
  z.strictObject({
    kind: z.literal('command'),
    /** Runs on the worker with the image map as JSON on stdin. */
    command: argv(),
    passEnv: passEnv(),
    /** The hook's process group is killed when it runs longer. */
    timeout: duration('1d').default('30m'),
  }),
]);
export type Activation = z.infer<typeof Activation>;

/**
 * Where a channel takes its images from (docs/channels.md): the name of another channel, or that channel with
 * conditions its current assignment must meet before a promotion (all that are given).
 */
export const ChannelRequirement = z.union([
  name(),
  z.strictObject({
    channel: name(),
    /** How long the images must have been active on that channel. */
    minAge: duration('365d').optional(),
    /** The images must have been marked tested on that channel (`bootc-release channel mark-tested`). */
    tested: z.boolean().default(false),
  }),
], { error: 'must be a channel name, or {channel, minAge?, tested?}' });
export type ChannelRequirement = z.infer<typeof ChannelRequirement>;

export const Channel = z.strictObject({
  activation: z.array(Activation).default([]),
  /** Absent: releases are assigned here at approval. Present: images arrive only by promotion from that channel. */
  requires: ChannelRequirement.optional(),
  /** Who may assign, promote, roll back and mark tested here (each one of approval.approvers); default all of them. */
  approvers: unique(z.string().min(1)).min(1).optional(),
});
export type Channel = z.infer<typeof Channel>;

export const Approval = z
  .strictObject({
    timeout: duration('90d').default('7d'),
    approvers: unique(z.string().min(1)).min(1),
    /** Approver → OpenSSH public keys whose `ssh-keygen -Y sign` signatures count as that approver's decision. */
    keys: z
      .record(
        z.string(),
        unique(z.string().regex(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43}( \P{Cc}*)?$/u, 'must be an ssh-ed25519 public key line')),
      )
      .default({}),
    /** Accept decisions that carry no signature (the Temporal UI's signals): anyone who reaches Temporal can send those. */
    allowUnsigned: z.boolean().default(false),
    /** What happens to candidate images when the release is rejected or times out. */
    onReject: z.enum(['keep', 'delete']).default('keep'),
    /** The channel an approved release is assigned to; default the first channel without `requires` (docs/channels.md). */
    channel: name().optional(),
  })
  .superRefine((a, ctx) => {
    for (const who of Object.keys(a.keys))
      if (!a.approvers.includes(who)) ctx.addIssue({ code: 'custom', path: ['keys', who], message: `"${who}" is not in approval.approvers` });
  });

export const ReleaseDefinition = z
  .strictObject({
    name: name(),
    description: z.string().optional(),
    source: Source,
    imageBuilder: ImageBuilder.prefault({}),
    architectures: z.partialRecord(Arch, ArchitectureSpec),
    targets: z.record(name(), Target).default({}),
    approval: Approval,
    channels: z.record(name(), Channel).default({}),
    /**
     * What retention deletes after an assignment (docs/retention.md): images no channel uses, outside every channel's
     * last `keep` releases, older than `minAge`; where the cloud can (AWS), deprecated by one run and deleted by a later one.
     */
    retention: z
      .strictObject({
        keep: z.number().int().min(1).max(1000).default(2),
        minAge: duration('365d').default('1d'),
        deprecateFirst: z.boolean().default(true),
      })
      .prefault({}),
    /** Who hears of a release awaiting approval, activated, rejected or failed (config/notifications.ts). */
    notifications: z.array(Notification).default([]),
    /**
     * How long a silent activity may go before Temporal retries it on another worker (a killed worker is noticed
     * this fast), and how retries back off. Defaults suit production; tests and demos shorten them.
     */
    timeouts: z
      .strictObject({
        heartbeat: duration('1h').default('30s'),
        retryInitial: duration('1h').default('5s'),
        retryMax: duration('1d').default('5m'),
        maxAttempts: z.number().int().min(0).max(1000).default(10),
        /**
         * How long a publish may wait for the worker that holds its staged artifact (its own staging queue) to pick
         * it up; past that the publish fails naming that worker instead of waiting forever for one that is gone.
         */
        stagingWait: duration('7d').default('30m'),
      })
      .prefault({}),
    /** Fetched artifacts on the workers: deleted when the release ends unless `keep` (to publish again by hand). */
    staging: z.strictObject({ keep: z.boolean().default(false) }).prefault({}),
  })
  .superRefine((def, ctx) => {
    const arches = Object.keys(def.architectures);
    if (arches.length === 0) ctx.addIssue({ code: 'custom', path: ['architectures'], message: 'needs at least one architecture' });
    for (const [arch, spec] of Object.entries(def.architectures)) {
      if (!spec) continue;
      const types = new Set(spec.types);
      if (types.has('iso') && types.size > 1)
        ctx.addIssue({ code: 'custom', path: ['architectures', arch, 'types'], message: 'iso cannot be mixed with disk image types in one build' });
      spec.targets.forEach((t, i) => {
        const target = def.targets[t];
        if (!target) {
          ctx.addIssue({ code: 'custom', path: ['architectures', arch, 'targets', i], message: `unknown target "${t}" (define it under targets)` });
          return;
        }
        if (target.kind === 'aws' && !AWS_ARCHES.includes(arch as Arch))
          ctx.addIssue({
            code: 'custom',
            path: ['architectures', arch, 'targets', i],
            message: `target "${t}" (aws) cannot take ${arch} images: EC2 has ${AWS_ARCHES.join(' and ')} instances only`,
          });
        const usable = TARGET_TYPES[target.kind].filter((ty) => types.has(ty));
        if (usable.length === 0)
          ctx.addIssue({
            code: 'custom',
            path: ['architectures', arch, 'targets', i],
            message: `target "${t}" (${target.kind}) takes ${TARGET_TYPES[target.kind].join(' or ')} images, and ${arch} builds only ${spec.types.join(', ')}`,
          });
      });
    }
    for (const [t, target] of Object.entries(def.targets)) {
      if (target.kind === 'aws')
        target.copyTo.forEach((r, i) => {
          if (r === target.region)
            ctx.addIssue({ code: 'custom', path: ['targets', t, 'copyTo', i], message: `"${r}" is the region the image is registered in` });
        });
      if (target.kind === 'aws' && target.method === 's3-import' && !target.bucket)
        ctx.addIssue({ code: 'custom', path: ['targets', t, 'bucket'], message: 'required when method is s3-import' });
      if (target.kind === 'openstack' && !target.authUrl && !(target.imageUrl && (target.tokenEnv || target.testIdentityHeaders)))
        ctx.addIssue({ code: 'custom', path: ['targets', t, 'authUrl'], message: 'required unless imageUrl and tokenEnv are given' });
    }
    for (const [c, channel] of Object.entries(def.channels)) {
      channel.activation.forEach((a, i) => {
        if (a.kind === 'image-map-file' && /^[A-Za-z0-9][A-Za-z0-9.-]*:\//.test(a.path) && !a.ssh?.hostKey)
          ctx.addIssue({ code: 'custom', path: ['channels', c, 'activation', i, 'ssh', 'hostKey'], message: `required for an image map on a host (${a.path})` });
      });
      const from = typeof channel.requires === 'string' ? channel.requires : channel.requires?.channel;
      const fromPath = typeof channel.requires === 'string' ? ['channels', c, 'requires'] : ['channels', c, 'requires', 'channel'];
      if (from && !def.channels[from]) ctx.addIssue({ code: 'custom', path: fromPath, message: `unknown channel "${from}"` });
      if (from === c) ctx.addIssue({ code: 'custom', path: fromPath, message: 'a channel cannot require itself' });
      channel.approvers?.forEach((who, i) => {
        if (!def.approval.approvers.includes(who))
          ctx.addIssue({ code: 'custom', path: ['channels', c, 'approvers', i], message: `"${who}" is not in approval.approvers` });
      });
    }
    if (durationMs(def.timeouts.retryInitial) > durationMs(def.timeouts.retryMax))
      ctx.addIssue({
        code: 'custom',
        path: ['timeouts', 'retryInitial'],
        message: `must not be longer than timeouts.retryMax (${def.timeouts.retryMax})`,
      });
    const approvedTo = def.approval.channel ? def.channels[def.approval.channel] : undefined;
    if (def.approval.channel && !approvedTo)
      ctx.addIssue({ code: 'custom', path: ['approval', 'channel'], message: `unknown channel "${def.approval.channel}"` });
    if (approvedTo?.requires)
      ctx.addIssue({
        code: 'custom',
        path: ['approval', 'channel'],
        message: `channel "${def.approval.channel}" has requires: images reach it by promotion only; name a channel without requires`,
      });
  });
export type ReleaseDefinition = z.infer<typeof ReleaseDefinition>;
export type ReleaseDefinitionInput = z.input<typeof ReleaseDefinition>;
export type ArchitectureSpec = z.infer<typeof ArchitectureSpec>;


/**
 * What a release runs: a validated definition narrowed to the chosen architectures, with the release id.
 * It is the workflow's state, so it holds references to credentials, never credentials.
 */
export const ReleasePlan = z.strictObject({
  releaseId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'must be letters, digits, ".", "_" or "-"'),
  definition: ReleaseDefinition,
  arches: unique(Arch).min(1),
  reason: z.string().max(500).optional(),
  requestedBy: z.string().max(100).optional(),
  /** Image name stamp, YYYYMMDD_HHMMSS of the release start. */
  stamp: z.string().regex(/^\d{8}_\d{6}$/),
});
export type ReleasePlan = z.infer<typeof ReleasePlan>;

/**
 * What `imageRelease` accepts. The short form is what a person types into the Temporal UI's start dialog:
 * `{"definition": "copr-builder", "arches": ["s390x"], "reason": "..."}`. The long form is what the CLI sends.
 */
const ShortInput = z.strictObject({
  definition: name(),
  arches: unique(Arch).min(1).optional(),
  reason: z.string().max(500).optional(),
  requestedBy: z.string().max(100).optional(),
});
const PlanInput = z.strictObject({ plan: z.unknown() });

/**
 * The form is chosen by the `plan` key, so a mistake is reported at its field (`input.arches.0`), not as "matches
 * neither form".
 */
export const ReleaseInput = z.unknown().transform((input, ctx) => {
  const isObject = typeof input === 'object' && input !== null && !Array.isArray(input);
  if (!isObject) {
    ctx.addIssue({ code: 'custom', message: 'must be an object', input });
    return z.NEVER;
  }
  const result = ('plan' in input ? PlanInput : ShortInput).safeParse(input);
  if (result.success) return result.data;
  ctx.issues.push(...result.error.issues.map((issue) => ({ ...issue, input: undefined })));
  return z.NEVER;
});
export type ReleaseInput =
  | { definition: string; arches?: Arch[]; reason?: string; requestedBy?: string }
  | { plan: ReleasePlanInput };
export type ReleasePlanInput = Omit<z.input<typeof ReleasePlan>, 'definition'> & { definition: ReleaseDefinitionInput };
