// The text `npm run demo` leaves on the screen once the release awaits approval: where to watch it, the candidates,
// how to look at each of them on its local server, and the three ways to approve (CLI, reject, the Web UI's dialog).
import { candidatesTable } from '../client/format';
import { outputStyle } from '../client/output';
import type { Candidate } from '../activities/types';
import type { ReleaseStatus } from '../workflows/messages';

export const APPROVER = 'demo-admin';
/** What to paste into the Web UI's "Send a Signal" dialog for `approve`, exactly. */
export const APPROVE_SIGNAL_JSON = JSON.stringify({ by: APPROVER });

export interface Endpoints {
  temporalAddress: string;
  uiAddress: string;
  motoEndpoint: string;
  glanceAddress: string;
  glanceProject: string;
  libvirtUri: string;
  pool: string;
  region: string;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function lookCommands(status: ReleaseStatus, e: Endpoints): string[] {
  const lines: string[] = [];
  const by = (kind: Candidate['kind']) => status.candidates.filter((c) => c.kind === kind);
  const aws = `AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing aws --endpoint-url ${e.motoEndpoint} --region ${e.region}`;
  if (by('aws').length) {
    lines.push(`  AMIs on moto:      ${aws} ec2 describe-images --image-ids ${by('aws').map((c) => c.imageId).join(' ')}`);
    const snap = by('aws')[0]!.resources?.find((r) => r.kind === 'snapshot')?.id;
    if (snap) lines.push(`  its EBS blocks:    ${aws} ebs list-snapshot-blocks --snapshot-id ${snap}`);
  }
  if (by('libvirt').length) lines.push(`  libvirt volumes:   virsh -c ${e.libvirtUri} vol-list --pool ${e.pool} --details`);
  if (by('openstack').length) {
    const headers = ['X-Identity-Status: Confirmed', 'X-User-Id: demo', `X-Project-Id: ${e.glanceProject}`, 'X-Roles: member,reader'];
    lines.push(`  Glance images:     curl -s ${headers.map((h) => `-H ${q(h)}`).join(' ')} ${e.glanceAddress}/v2/images`);
  }
  if (by('directory').length) lines.push('  image files:       ls -ls .demo/images');
  return lines;
}

/** The CLI reaches the demo's Temporal without a variable on the default port. */
const envPrefixFor = (address: string) => (address === '127.0.0.1:7233' ? '' : `TEMPORAL_ADDRESS=${address} `);

export function awaitingApprovalText(id: string, status: ReleaseStatus, e: Endpoints): string {
  const envPrefix = envPrefixFor(e.temporalAddress);
  const failures = status.publishFailures.map((f) => `  publish failed: ${f.arch} → ${f.target}: ${f.error}`);
  return `
Release ${id} is awaiting approval.
Temporal Web UI: ${e.uiAddress}/namespaces/default/workflows/${id}

Candidate images (use or ignore):
${candidatesTable(status.candidates, outputStyle({ isTTY: process.stdout.isTTY }))}
${failures.length ? `${failures.join('\n')}\n` : ''}
Look at them on the local servers:
${lookCommands(status, e).join('\n')}

Approve (in another terminal):
  ${envPrefix}npm run -s cli -- release approve ${id} --by ${APPROVER}
or reject:
  ${envPrefix}npm run -s cli -- release reject ${id} --by ${APPROVER} --reason "not today"
or approve in the Web UI: open the release, More Actions → Send a Signal, pick "approve" and paste as input:
  ${APPROVE_SIGNAL_JSON}
The image map is written to .demo/image-map.yaml on approval. Ctrl-C stops everything.
`;
}

/** What the demo says once the release is activated on staging: how to promote it, look at it and roll it back. */
export function promotionText(temporalAddress: string): string {
  const cli = `${envPrefixFor(temporalAddress)}npm run -s cli --`;
  return `The images are on channel staging. Mark them tested there, then promote them to production
(its image map is .demo/image-map-production.yaml):
  ${cli} channel mark-tested staging --by ${APPROVER}
  ${cli} channel promote staging production --by ${APPROVER}
  ${cli} channel show production
Roll production back later with:
  ${cli} channel rollback production --by ${APPROVER}`;
}
