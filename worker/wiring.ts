// Wires the real clients into the activities. Tests call the same function with overrides that point the clouds at
// the rig's peers (moto, the IBM stand-in, rig SSH hosts); production passes none.
import path from 'node:path';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { ActivityDeps } from '../activities';
import { createActivationDrivers, type ActivationDeps } from '../activities/activation';
import { createAwsBuilderProvider, createAwsTarget, type AwsBuilderDeps, type AwsTargetDeps } from '../activities/aws';
import { createBuilderActivities, type BuilderActivityDeps } from '../activities/build';
import { createCommandProvider } from '../activities/hosts/command';
import { createDirectoryTarget } from '../activities/directory/target';
import { createIbmCloudBuilderProvider } from '../activities/ibmcloud/builder-vm';
import { IamTokens } from '../activities/ibmcloud/iam';
import type { IbmCloudDeps } from '../activities/ibmcloud/deps';
import { createIbmCloudTarget } from '../activities/ibmcloud/target';
import { createLibvirtBuilderProvider, type LibvirtBuilderDeps } from '../activities/libvirt/builder-vm';
import { createLibvirtTarget, type LibvirtTargetDeps } from '../activities/libvirt/target';
import { createNotifyActivities, type NotifyDeps } from '../activities/notify/activities';
import { createOpenstackTarget, type OpenstackTargetDeps } from '../activities/openstack/target';
import { createFetchActivities, type FetchDeps } from '../activities/fetch/activities';
import { createStagingCleanup } from '../activities/fetch/staged-cleanup';
import { createStaticProvider } from '../activities/hosts/static';
import type { RegistryOptions } from '../activities/source/registry';
import type { ReleaseHistory } from '../activities/source/trigger';
import { releaseVisibilityQuery } from '../config/temporal';
import { releaseSourceDigestKey } from '../workflows/search-attributes';
import { KnownHosts } from '../activities/ssh/known-hosts';
import { channelGatewayFrom } from './channel-gateway';
import type { WorkerSettings } from './settings';

/** Release state from the workflow of the same id ('unknown' when Temporal never heard of it), and ids by prefix. */
export function releaseStateFrom(client: Client): ActivityDeps['releases'] {
  return {
    async state(releaseId) {
      try {
        const { status } = await client.workflow.getHandle(releaseId).describe();
        return status.name === 'RUNNING' ? 'open' : status.name === 'CANCELLED' ? 'cancelled' : 'closed';
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return 'unknown';
        throw err;
      }
    },
    async idsStartingWith(prefix) {
      // Callers pass [a-z0-9]+ only (activities/naming.ts), so the prefix needs no quoting.
      if (!/^[a-z0-9]+$/.test(prefix)) throw new Error(`release id prefix "${prefix}" is not [a-z0-9]+`);
      const ids: string[] = [];
      for await (const wf of client.workflow.list({ query: `WorkflowId STARTS_WITH '${prefix}'` })) ids.push(wf.workflowId);
      return ids;
    },
  };
}

/** Earlier releases of a definition, from Temporal's visibility (the search attributes releases set). */
export function releaseHistoryFrom(client: Client): ReleaseHistory {
  return {
    async running(definition) {
      const ids: string[] = [];
      for await (const w of client.workflow.list({ query: releaseVisibilityQuery({ name: definition, running: true }) })) ids.push(w.workflowId);
      return ids;
    },
    async lastActivated(definition) {
      let last: Awaited<ReturnType<ReleaseHistory['lastActivated']>>;
      const query = releaseVisibilityQuery({ name: definition, stage: 'activated' });
      for await (const w of client.workflow.list({ query })) {
        const at = (w.closeTime ?? w.startTime).toISOString();
        if (last && last.at >= at) continue;
        last = { releaseId: w.workflowId, at, sourceDigest: w.typedSearchAttributes.get(releaseSourceDigestKey) };
      }
      return last;
    },
  };
}

export interface WiringOverrides {
  aws?: AwsBuilderDeps & AwsTargetDeps;
  ibmcloud?: IbmCloudDeps;
  libvirtBuilder?: LibvirtBuilderDeps;
  libvirtTarget?: LibvirtTargetDeps;
  openstack?: OpenstackTargetDeps;
  builder?: Partial<BuilderActivityDeps>;
  /** Piece size and heartbeat interval of the fetch (tests use small pieces to observe a resume). */
  fetch?: Pick<FetchDeps, 'pieceBytes' | 'heartbeatIntervalMs'>;
  notify?: Partial<NotifyDeps>;
  /** Registries the source trigger reads digests from over plain HTTP (a rig's local registry). */
  registry?: RegistryOptions;
  activation?: Partial<ActivationDeps>;
}

export function createActivityDeps(
  settings: Pick<WorkerSettings, 'definitionsDir' | 'stagingDir' | 'stateDir' | 'stagingQueue'> &
    Partial<Pick<WorkerSettings, 'namespace' | 'uiUrl' | 'allowInlineDefinitions' | 'plainHttpRegistries'>>,
  /**
   * The Temporal client the activities ask about releases (is one still running, which was activated last, ids by
   * prefix for the janitor), or only the janitor's lookup (tests that need no more).
   */
  temporal: Client | ActivityDeps['releases'],
  overrides: WiringOverrides = {},
): ActivityDeps {
  const ibm = { tokens: new IamTokens(), ...overrides.ibmcloud };
  // Hypervisors outlive releases: their first host key is pinned in a file the worker owns.
  const knownHosts = new KnownHosts(path.join(settings.stateDir, 'known_hosts'));
  const builder = createBuilderActivities({ stagingDir: settings.stagingDir, ...overrides.builder });
  const fetch = createFetchActivities({
    stagingDir: settings.stagingDir,
    stagingQueue: settings.stagingQueue,
    ...overrides.fetch,
  });
  const client = 'workflow' in temporal ? temporal : undefined;
  const releases = client ? releaseStateFrom(client) : (temporal as ActivityDeps['releases']);
  return {
    definitionsDir: settings.definitionsDir,
    allowInlineDefinitions: settings.allowInlineDefinitions ?? false,
    providers: {
      static: createStaticProvider(),
      command: createCommandProvider({ stateDir: settings.stateDir }),
      aws: createAwsBuilderProvider(overrides.aws),
      ibmcloud: createIbmCloudBuilderProvider(ibm),
      libvirt: createLibvirtBuilderProvider({ knownHosts, ...overrides.libvirtBuilder }),
    },
    targets: {
      directory: createDirectoryTarget(),
      aws: createAwsTarget(overrides.aws),
      ibmcloud: createIbmCloudTarget(ibm),
      libvirt: createLibvirtTarget({ knownHosts, ...overrides.libvirtTarget }),
      openstack: createOpenstackTarget(overrides.openstack),
    },
    steps: {
      prepareDataVolume: builder.prepareDataVolume,
      prepareContainerImage: builder.prepareContainerImage,
      runImageBuild: builder.runImageBuild,
      fetchArtifacts: fetch.fetchArtifacts,
      ...createStagingCleanup({ stagingDir: settings.stagingDir }),
    },
    // Sinks' addresses and tokens are named by variable in the definition and looked up in the worker's environment.
    notify: createNotifyActivities({ env: process.env, uiAddress: settings.uiUrl, namespace: settings.namespace, ...overrides.notify }),
    trigger: {
      cacheDir: path.join(settings.stateDir, 'sources'),
      history: client ? releaseHistoryFrom(client) : undefined,
      registry: overrides.registry ?? { plainHttp: settings.plainHttpRegistries ?? [] },
    },
    activations: createActivationDrivers({ stateDir: settings.stateDir, aws: overrides.aws, ...overrides.activation }),
    releases,
    channels: client ? channelGatewayFrom(client) : undefined,
  };
}
