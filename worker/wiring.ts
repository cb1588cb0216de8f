// Wires the real clients into the activities. Tests call the same function with overrides that point the clouds at
// the rig's peers (moto, the IBM stand-in, rig SSH hosts); production passes none.
import path from 'node:path';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { ActivityDeps } from '../activities';
import { createAwsBuilderProvider, createAwsTarget, type AwsBuilderDeps, type AwsTargetDeps } from '../activities/aws';
import { createBuilderActivities, type BuilderActivityDeps } from '../activities/builder';
import { createCommandProvider } from '../activities/command/provider';
import { createDirectoryTarget } from '../activities/directory/target';
import { createIbmCloudBuilderProvider } from '../activities/ibmcloud/builder-vm';
import { IamTokens } from '../activities/ibmcloud/iam';
import type { IbmCloudDeps } from '../activities/ibmcloud/deps';
import { createIbmCloudTarget } from '../activities/ibmcloud/target';
import { createLibvirtBuilderProvider, type LibvirtBuilderDeps } from '../activities/libvirt/builder-vm';
import { createLibvirtTarget, type LibvirtTargetDeps } from '../activities/libvirt/target';
import { createNotifyActivities, type NotifyDeps } from '../activities/notify/activities';
import { createOpenstackTarget, type OpenstackTargetDeps } from '../activities/openstack/target';
import { createFetchActivities, type FetchDeps } from '../activities/staging/fetch-artifacts';
import { createStaticProvider } from '../activities/static/provider';
import type { RegistryOptions } from '../activities/source/registry';
import type { ReleaseHistory } from '../activities/source/trigger';
import { releaseNameKey, releaseSourceDigestKey, releaseStageKey } from '../workflows/search-attributes';
import { WORKFLOW_TYPES } from '../workflows/messages';
import type { WorkerSettings } from './settings';

/** Release state from the workflow of the same id; 'unknown' when Temporal never heard of it. */
export function releaseStateFrom(client: Client): ActivityDeps['releaseState'] {
  return async (releaseId) => {
    try {
      const { status } = await client.workflow.getHandle(releaseId).describe();
      return status.name === 'RUNNING' ? 'open' : 'closed';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return 'unknown';
      throw err;
    }
  };
}

/** Earlier releases of a definition, from Temporal's visibility (the search attributes releases set). */
export function releaseHistoryFrom(client: Client): ReleaseHistory {
  const quote = (s: string) => `'${s.replace(/'/g, "")}'`;
  const ofDefinition = (name: string) => `WorkflowType = '${WORKFLOW_TYPES.release}' AND ${releaseNameKey.name} = ${quote(name)}`;
  return {
    async running(definition) {
      const ids: string[] = [];
      for await (const w of client.workflow.list({ query: `${ofDefinition(definition)} AND ExecutionStatus = 'Running'` })) ids.push(w.workflowId);
      return ids;
    },
    async lastActivated(definition) {
      let last: Awaited<ReturnType<ReleaseHistory['lastActivated']>>;
      const query = `${ofDefinition(definition)} AND ${releaseStageKey.name} = 'activated'`;
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
}

export function createActivityDeps(
  settings: Pick<WorkerSettings, 'definitionsDir' | 'stagingDir' | 'stateDir' | 'stagingQueue'> &
    Partial<Pick<WorkerSettings, 'namespace' | 'uiUrl'>>,
  /**
   * The Temporal client the activities ask about releases (is one still running, which was activated last), or
   * only the first of those answers (the janitor never deletes an open release's builder).
   */
  temporal: Client | ActivityDeps['releaseState'],
  overrides: WiringOverrides = {},
): ActivityDeps {
  const ibm = { tokens: new IamTokens(), ...overrides.ibmcloud };
  const builder = createBuilderActivities({ stagingDir: settings.stagingDir, ...overrides.builder });
  const fetch = createFetchActivities({
    stagingDir: settings.stagingDir,
    stagingQueue: settings.stagingQueue,
    ...overrides.fetch,
  });
  const client = typeof temporal === 'function' ? undefined : temporal;
  const releaseState = client ? releaseStateFrom(client) : (temporal as ActivityDeps['releaseState']);
  return {
    definitionsDir: settings.definitionsDir,
    providers: {
      static: createStaticProvider(),
      command: createCommandProvider({ stateDir: settings.stateDir }),
      aws: createAwsBuilderProvider(overrides.aws),
      ibmcloud: createIbmCloudBuilderProvider(ibm),
      libvirt: createLibvirtBuilderProvider(overrides.libvirtBuilder),
    },
    targets: {
      directory: createDirectoryTarget(),
      aws: createAwsTarget(overrides.aws),
      ibmcloud: createIbmCloudTarget(ibm),
      libvirt: createLibvirtTarget(overrides.libvirtTarget),
      openstack: createOpenstackTarget(overrides.openstack),
    },
    steps: {
      prepareDataVolume: builder.prepareDataVolume,
      prepareContainerImage: builder.prepareContainerImage,
      runImageBuild: builder.runImageBuild,
      fetchArtifacts: fetch.fetchArtifacts,
    },
    // Sinks' addresses and tokens are named by variable in the definition and looked up in the worker's environment.
    notify: createNotifyActivities({ env: process.env, uiAddress: settings.uiUrl, namespace: settings.namespace, ...overrides.notify }),
    trigger: {
      cacheDir: path.join(settings.stateDir, 'sources'),
      history: client ? releaseHistoryFrom(client) : undefined,
      registry: overrides.registry ?? { plainHttp: process.env.BOOTC_RELEASE_PLAIN_HTTP_REGISTRIES?.split(',').filter(Boolean) },
    },
    releaseState,
  };
}
