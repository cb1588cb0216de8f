import { describe, expect, it } from 'vitest';
import { releaseDetails } from '../../workflows/release-details';
import type { ReleaseStatus } from '../../workflows/messages';

const plan = (allowUnsigned: boolean) =>
  ({ definition: { name: 'copr-builder', approval: { approvers: ['copr-admin', 'release-manager'], allowUnsigned } } }) as any;

const awaiting: ReleaseStatus = {
  releaseId: 'copr-builder-20261129-120000',
  name: 'copr-builder',
  stage: 'awaiting-approval',
  reason: 'nightly',
  startedAt: '2026-11-29T12:00:00Z',
  approvalDeadline: '2026-12-06T12:00:00.000Z',
  arches: {
    x86_64: { stage: 'published', builder: { provider: 'aws', id: 'i-0abc', address: '10.0.0.5' }, artifacts: [{ type: 'ami', size: 10 * 2 ** 30, dataBytes: 2 * 2 ** 30, sha256: 'ab' }] },
    s390x: { stage: 'failed', error: 's390x: no space left on /var/tmp | give it more' },
  },
  candidates: [
    { arch: 'x86_64', target: 'aws-prod', kind: 'aws', region: 'us-east-1', imageId: 'ami-0123', name: 'copr-builder-x86_64-20261129_120000', type: 'ami', size: 1, sha256: 'ab' },
  ],
  publishFailures: [],
};

describe('the Current Details of a release in the Web UI', () => {
  it('shows the stage, an architecture table, the candidates, and the exact approve JSON when unsigned signals count', () => {
    const md = releaseDetails(awaiting, plan(true));
    expect(md).toContain('**copr-builder** `copr-builder-20261129-120000` is **awaiting-approval** — nightly');
    expect(md).toContain('| x86_64 | published | aws i-0abc | ami 2048 MiB of 10240 MiB |');
    // A pipe in an error would break the table: it is escaped.
    expect(md).toContain('| s390x | failed: s390x: no space left on /var/tmp \\| give it more | — | — |');
    expect(md).toContain('| x86_64 | aws-prod | us-east-1 | `ami-0123` | copr-builder-x86_64-20261129_120000 |');
    expect(md).toContain('```json\n{"by":"copr-admin"}\n```');
    expect(md).toContain('`{"by":"copr-admin","images":["ami-0123"]}`');
  });

  it('points to the signed CLI approval when the definition refuses unsigned decisions', () => {
    const md = releaseDetails(awaiting, plan(false));
    expect(md).not.toContain('```json');
    expect(md).toContain('`bootc-release release approve copr-builder-20261129-120000 --by NAME --key KEY`');
  });

  it('says nothing about approving once the decision is taken', () => {
    const md = releaseDetails({ ...awaiting, stage: 'activating', approval: { decision: 'approved', by: 'copr-admin', at: '2026-11-29T13:00:00Z' } }, plan(true));
    expect(md).not.toContain('Send a Signal');
    expect(md).toContain('Decision: approved by copr-admin at 2026-11-29T13:00:00Z.');
  });
});
