// Wires the real clients into the activities. Tests call the same function with overrides that point the clouds at
// the rig's peers (moto, the IBM stand-in, rig SSH hosts); production passes none.
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
import { createOpenstackTarget, type OpenstackTargetDeps } from '../activities/openstack/target';
import { createFetchActivities, type FetchDeps } from '../activities/staging/fetch-artifacts';
import { createStagingCleanup } from '../activities/staging/cleanup';
import { createStaticProvider } from '../activities/static/provider';
import type { WorkerSettings } from './settings';

/** Release state from the workflow of the same id; 'unknown' when Temporal never heard of it. */
export function releaseStateFrom(client: Client): ActivityDeps['releaseState'] {
  return async (releaseId) => {
    try {
      const { status } = await client.workflow.getHandle(releaseId).describe();
      return status.name === 'RUNNING' ? 'open' : status.name === 'CANCELLED' ? 'cancelled' : 'closed';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return 'unknown';
      throw err;
    }
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
}

export function createActivityDeps(
  settings: Pick<WorkerSettings, 'definitionsDir' | 'stagingDir' | 'stateDir' | 'stagingQueue'>,
  /** Asks Temporal whether a release is still running (the janitor never deletes an open release's builder). */
  releaseState: ActivityDeps['releaseState'],
  overrides: WiringOverrides = {},
): ActivityDeps {
  const ibm = { tokens: new IamTokens(), ...overrides.ibmcloud };
  const builder = createBuilderActivities({ stagingDir: settings.stagingDir, ...overrides.builder });
  const fetch = createFetchActivities({
    stagingDir: settings.stagingDir,
    stagingQueue: settings.stagingQueue,
    ...overrides.fetch,
  });
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
      ...createStagingCleanup({ stagingDir: settings.stagingDir }),
    },
    releaseState,
  };
}
