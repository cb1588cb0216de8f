// The publisher without a Temporal server: driven with fake publish and delete activities, it must publish each
// architecture's artifacts to its targets, record what failed in words a person can act on, publish again only
// what a retry names, and keep a ledger of every place it began to publish to for the cleanup of a cancel.
import { CancelledFailure, TimeoutFailure } from '@temporalio/workflow';
import { describe, expect, it } from 'vitest';
import { planFromDefinition } from '../../activities/plan/resolve-plan';
import type { Candidate, PublishRequest, StagedArtifact } from '../../activities/types';
import type { Arch } from '../../config/schema';
import type { ReleaseStage, ReleaseStatus } from '../../workflows/messages';
import { ReleasePublisher, type PublishPlace } from '../../workflows/publisher';
import { noCandidatesMessage } from '../../workflows/release-rules';

const releaseId = 'farm-20261129-120000';
const stamp = '20261129_120000';
const builder = { provider: 'static', hosts: [{ address: '192.0.2.1' }] };
const plan = planFromDefinition(
  {
    name: 'farm',
    source: { image: 'quay.io/x/y:1' },
    architectures: {
      x86_64: { builder, types: ['ami', 'qcow2'], targets: ['shelf', 'cloud', 'flaky'] },
      s390x: { builder, types: ['qcow2'], targets: ['shelf', 'flaky'] },
    },
    targets: {
      shelf: { kind: 'directory', path: '/srv/images' },
      flaky: { kind: 'directory', path: '/srv/flaky' },
      cloud: { kind: 'aws', region: 'us-east-1' },
    },
    approval: { approvers: ['copr-admin'] },
  },
  { releaseId, startedAt: new Date('2026-11-29T12:00:00Z') },
);

const artifact = (arch: Arch, type: StagedArtifact['type'], worker = 'w1'): StagedArtifact => ({
  arch, type, path: `/var/lib/staging/${releaseId}/${arch}/${type}/disk.${type}`, size: 10, dataBytes: 5, sha256: 'ab', stagingQueue: `bootc-release@${worker}`,
});

const candidateOf = (r: PublishRequest): Candidate => ({
  arch: r.arch, target: r.targetName, kind: r.target.kind, imageId: `${r.targetName}/${r.imageName}`, name: r.imageName, type: r.artifact.type, size: 10, sha256: 'ab',
});

/** A publisher whose publish activity answers with `outcome` (a candidate by default) and records every call. */
function publisherOf(outcome: (r: PublishRequest) => Promise<Candidate[]> = async (r) => [candidateOf(r)], stage: ReleaseStage = 'building') {
  const status: ReleaseStatus = { releaseId, stage, startedAt: '2026-11-29T12:00:00.000Z', arches: {}, candidates: [], publishFailures: [] };
  const published: { target: string; arch: Arch; imageName: string; summary: string }[] = [];
  const deleted: PublishPlace[] = [];
  let announced = 0;
  const publisher = new ReleasePublisher({
    releaseId,
    status,
    plan: () => plan,
    publishArtifact: (request, summary) => {
      published.push({ target: request.targetName, arch: request.arch, imageName: request.imageName, summary });
      return outcome(request);
    },
    deletePublished: async (place) => {
      deleted.push(place);
      if (place.targetName === 'cloud') throw new Error('AuthFailure: the credentials were revoked');
    },
    candidatesChanged: () => announced++,
  });
  return { publisher, status, published, deleted, announced: () => announced };
}

const flakyFails = async (r: PublishRequest) => {
  if (r.targetName === 'flaky') throw new Error(`EISDIR: illegal operation on a directory, open '/srv/flaky/${r.imageName}'`);
  return [candidateOf(r)];
};

describe('publishing an architecture', () => {
  it('gives each target what it takes, lists the candidates, and records a failed target without failing the others', async () => {
    const { publisher, status, published, announced } = publisherOf(flakyFails);
    await publisher.publishArch('x86_64', [artifact('x86_64', 'ami'), artifact('x86_64', 'qcow2')]);

    // A directory keeps every artifact (named by type), a cloud the first of its types.
    expect(published.map((p) => `${p.target} ${p.imageName}`)).toEqual([
      `shelf farm-x86_64-${stamp}-ami`,
      `cloud farm-x86_64-${stamp}`,
      `flaky farm-x86_64-${stamp}-ami`,
      `shelf farm-x86_64-${stamp}-qcow2`,
    ]);
    expect(published[1]!.summary).toBe(`publish x86_64 ami to cloud (aws) as farm-x86_64-${stamp}`);
    expect(status.candidates.map((c) => c.imageId)).toEqual([
      `shelf/farm-x86_64-${stamp}-ami`,
      `cloud/farm-x86_64-${stamp}`,
      `shelf/farm-x86_64-${stamp}-qcow2`,
    ]);
    expect(announced()).toBe(3);
    expect(status.publishFailures).toEqual([
      { arch: 'x86_64', target: 'flaky', error: `EISDIR: illegal operation on a directory, open '/srv/flaky/farm-x86_64-${stamp}-ami'` },
    ]);
    expect(publisher.failed('x86_64')).toBe(true);
    expect(publisher.idle()).toBe(true);
    expect(publisher.staged().map((a) => a.type)).toEqual(['ami', 'qcow2']);
  });

  it('records a target whose type the build did not bring back, without calling the activity', async () => {
    const { publisher, status, published } = publisherOf();
    await publisher.publishArch('x86_64', [artifact('x86_64', 'qcow2')]);
    expect(published.map((p) => p.target)).toEqual(['shelf', 'flaky']);
    expect(status.publishFailures).toEqual([{ arch: 'x86_64', target: 'cloud', error: 'no aws artifact was built for x86_64' }]);
  });

  it('names the staging worker that never picked the publish up, and how to get it going again', async () => {
    const gone = async (): Promise<Candidate[]> => {
      throw new Error('activity task timed out', { cause: new TimeoutFailure('timed out', undefined, 'SCHEDULE_TO_START') });
    };
    const { publisher, status } = publisherOf(gone);
    await publisher.publishArch('s390x', [artifact('s390x', 'qcow2', 'builder-host-7')]);
    expect(status.publishFailures[0]).toEqual({
      arch: 's390x',
      target: 'shelf',
      error:
        `staging worker builder-host-7 (task queue bootc-release@builder-host-7) did not pick the publish up within 30m; ` +
        `it holds /var/lib/staging/${releaseId}/s390x/qcow2/disk.qcow2. Start that worker again (BOOTC_RELEASE_WORKER_ID=builder-host-7) and retry the target`,
    });
  });

  it('lets a cancel through instead of recording it as a failure', async () => {
    const { publisher, status } = publisherOf(async () => {
      throw new CancelledFailure('cancelled');
    });
    await expect(publisher.publishArch('s390x', [artifact('s390x', 'qcow2')])).rejects.toBeInstanceOf(CancelledFailure);
    expect(status.publishFailures).toEqual([]);
    expect(publisher.idle()).toBe(true);
  });

  it('explains a release without candidates by each architecture and each failed publish', async () => {
    const { publisher, status } = publisherOf(async () => {
      throw new Error('disk full');
    });
    await publisher.publishArch('s390x', [artifact('s390x', 'qcow2')]);
    status.arches = { s390x: { stage: 'failed' }, x86_64: { stage: 'failed', error: 'x86_64: builder i-0abc is gone' } };
    expect(noCandidatesMessage(status)).toBe(
      'no candidate images: s390x: failed; x86_64: builder i-0abc is gone; ' +
        's390x → shelf: disk full; s390x → flaky: disk full',
    );
  });
});

describe('retrying a failed target', () => {
  it('refuses what it cannot retry, saying why', async () => {
    const { publisher, status } = publisherOf(flakyFails);
    await publisher.publishArch('x86_64', [artifact('x86_64', 'ami')]);
    expect(publisher.retryProblem({ target: 'shelf' })).toBe('target shelf has no failed publish to retry');
    expect(publisher.retryProblem({ target: 'flaky', arch: 's390x' })).toBe('target flaky (s390x) has no failed publish to retry');
    expect(publisher.retryProblem({ target: 'flaky' })).toBeUndefined();
    status.stage = 'approved';
    expect(publisher.retryProblem({ target: 'flaky' })).toBe(
      'release is approved: only a release that is building or awaiting approval can retry a target',
    );
  });

  it('publishes again only the failed target of the named architecture, and answers once it is done', async () => {
    let blocked = true;
    const { publisher, status, published } = publisherOf(async (r) => {
      if (r.targetName === 'flaky' && blocked) throw new Error('EISDIR');
      return [candidateOf(r)];
    }, 'awaiting-approval');
    await publisher.publishArch('x86_64', [artifact('x86_64', 'ami')]);
    await publisher.publishArch('s390x', [artifact('s390x', 'qcow2')]);
    expect(status.publishFailures.map((f) => `${f.arch} → ${f.target}`)).toEqual(['x86_64 → flaky', 's390x → flaky']);
    published.length = 0;

    blocked = false;
    const retried = publisher.retry({ target: 'flaky', arch: 's390x' });
    expect(publisher.idle()).toBe(false);
    expect(await retried).toBe(status);
    expect(published.map((p) => `${p.arch} → ${p.target}`)).toEqual(['s390x → flaky']);
    expect(status.publishFailures.map((f) => `${f.arch} → ${f.target}`)).toEqual(['x86_64 → flaky']);
    expect(status.candidates.map((c) => c.imageId)).toContain(`flaky/farm-s390x-${stamp}`);
    expect(publisher.idle()).toBe(true);
  });
});

describe('the ledger and the cleanup of a cancelled release', () => {
  it('records every place it began to publish to, failed ones too, with the image names it used there', async () => {
    const { publisher } = publisherOf(flakyFails);
    await publisher.publishArch('x86_64', [artifact('x86_64', 'ami'), artifact('x86_64', 'qcow2')]);
    await publisher.publishArch('s390x', [artifact('s390x', 'qcow2', 'w2')]);
    expect(publisher.ledger.places.map(({ arch, targetName, imageNames, stagingQueue }) => ({ arch, targetName, imageNames, stagingQueue }))).toEqual([
      { arch: 'x86_64', targetName: 'shelf', imageNames: [`farm-x86_64-${stamp}-ami`, `farm-x86_64-${stamp}-qcow2`], stagingQueue: 'bootc-release@w1' },
      { arch: 'x86_64', targetName: 'cloud', imageNames: [`farm-x86_64-${stamp}`], stagingQueue: 'bootc-release@w1' },
      { arch: 'x86_64', targetName: 'flaky', imageNames: [`farm-x86_64-${stamp}-ami`], stagingQueue: 'bootc-release@w1' },
      { arch: 's390x', targetName: 'shelf', imageNames: [`farm-s390x-${stamp}`], stagingQueue: 'bootc-release@w2' },
      { arch: 's390x', targetName: 'flaky', imageNames: [`farm-s390x-${stamp}`], stagingQueue: 'bootc-release@w2' },
    ]);
  });

  it('waits for the running publishes to stop, then deletes at every place and names the ones it could not', async () => {
    let stop!: () => void;
    const running = new Promise<Candidate[]>((_, reject) => (stop = () => reject(new CancelledFailure('cancelled'))));
    const { publisher, deleted } = publisherOf((r) => (r.targetName === 'cloud' ? running : Promise.resolve([candidateOf(r)])));
    const publishing = publisher.publishArch('x86_64', [artifact('x86_64', 'ami')]).catch((err: unknown) => err);

    const cleanUp = publisher.cleanUp();
    await new Promise((r) => setTimeout(r, 10));
    expect(deleted).toEqual([]);
    stop();
    expect(await publishing).toBeInstanceOf(CancelledFailure);
    expect(await cleanUp).toEqual(['x86_64 → cloud: AuthFailure: the credentials were revoked']);
    expect(deleted.map((p) => p.targetName)).toEqual(['shelf', 'cloud', 'flaky']);
  });
});
