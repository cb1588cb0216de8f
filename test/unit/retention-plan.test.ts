// The rules of retention (activities/retention/plan.ts): what is deleted, deprecated or kept, and why, from what
// the targets hold and what the channels still need. The targets themselves are exercised in
// test/integration/retention.test.ts against moto, libvirtd and glance-api.
import { describe, expect, it } from 'vitest';
import type { ChannelAssignment, ChannelState } from '../../activities/channels';
import { parseImageName } from '../../activities/retention/names';
import { imagesToCheckForUse, knownFromChannels, planFrom, protectionsOf, type ListedImage, type PlanInput } from '../../activities/retention/plan';
import type { Candidate, PublishedImage } from '../../activities/types';

const DEF = 'copr';
const NOW = '2026-06-01T00:00:00.000Z';
const stamps = { r1: '20260101_000000', r2: '20260201_000000', r3: '20260301_000000' } as const;
type Rel = keyof typeof stamps;

function image(rel: Rel, kind: 'aws' | 'libvirt', extra: Partial<PublishedImage> = {}): PublishedImage {
  const imageName = `${DEF}-x86_64-${stamps[rel]}`;
  return {
    arch: 'x86_64',
    target: kind === 'aws' ? 'aws-prod' : 'hypervisors',
    kind,
    region: kind === 'aws' ? 'us-east-1' : 'hv1',
    imageId: kind === 'aws' ? `ami-${rel}` : `hv1:images/${imageName}`,
    name: imageName,
    type: kind === 'aws' ? 'ami' : 'raw',
    size: 1,
    sha256: '',
    imageName,
    // AWS tags the release id; a libvirt volume only has its name.
    ...(kind === 'aws' ? { releaseId: rel } : {}),
    ...extra,
  };
}

const listed = (img: PublishedImage, extra: Partial<ListedImage> = {}): ListedImage => ({ target: img.target, image: img, canDeprecate: img.kind === 'aws', ...extra });

function assignment(seq: number, rel: Rel, images: Candidate[] = [image(rel, 'aws')]): ChannelAssignment {
  return { seq, kind: 'approve', releaseId: rel, images, by: 'copr-admin', at: NOW };
}

function channel(name: string, history: ChannelAssignment[]): ChannelState {
  return { definition: DEF, channel: name, current: history.at(-1), history, retention: [] };
}

function input(o: Partial<PlanInput> & { channels?: ChannelState[]; keep?: number }): PlanInput {
  const keep = o.keep ?? 1;
  const channels = o.channels ?? [channel('production', [assignment(1, 'r1'), assignment(2, 'r2'), assignment(3, 'r3')])];
  return {
    definition: DEF,
    settings: { keep, minAge: '0s', deprecateFirst: false, ...o.settings },
    now: NOW,
    images: o.images ?? (['r1', 'r2', 'r3'] as Rel[]).flatMap((r) => [listed(image(r, 'aws')), listed(image(r, 'libvirt'))]),
    protections: o.protections ?? protectionsOf(channels, keep, []),
    known: o.known ?? knownFromChannels(channels),
    holdAll: o.holdAll,
  };
}

const ids = (items: { image: PublishedImage }[]) => items.map((i) => i.image.imageId).sort();

describe('retention plan', () => {
  it('with keep 1 deletes every image of the releases no channel uses, at tagged and name-only targets alike', () => {
    const plan = planFrom(input({}));
    expect(ids(plan.delete)).toEqual(['ami-r1', 'ami-r2', `hv1:images/${DEF}-x86_64-${stamps.r1}`, `hv1:images/${DEF}-x86_64-${stamps.r2}`]);
    // The volume records no release: its stamp ties it to r1, r2 (from the AMIs' tags and the channel history).
    expect(plan.delete.map((i) => i.releaseId).sort()).toEqual(['r1', 'r1', 'r2', 'r2']);
    expect(plan.kept.map((k) => [k.image.imageId, k.why])).toEqual([
      ['ami-r3', 'release r3: current on channel production'],
      [`hv1:images/${DEF}-x86_64-${stamps.r3}`, 'release r3: current on channel production'],
    ]);
    expect(plan.protected).toEqual([{ releaseId: 'r3', why: 'current on channel production' }]);
  });

  it("keeps each channel's rollback window of keep releases, and what any channel runs", () => {
    const channels = [
      channel('production', [assignment(1, 'r1'), assignment(2, 'r2'), assignment(3, 'r3')]),
      channel('staging', [assignment(1, 'r1')]),
    ];
    const plan = planFrom(input({ channels, keep: 2 }));
    expect(plan.delete).toEqual([]);
    expect(plan.protected).toEqual([
      { releaseId: 'r3', why: 'current on channel production' },
      { releaseId: 'r2', why: "in channel production's rollback window (keep 2)" },
      { releaseId: 'r1', why: 'current on channel staging' },
    ]);
  });

  it('keeps the images of a running release, and of releases the caller protects', () => {
    const protections = protectionsOf([channel('production', [assignment(1, 'r3')])], 1, [{ releaseId: 'r2', stage: 'awaiting-approval', imageNames: [`${DEF}-x86_64-${stamps.r2}`] }], ['r1']);
    const plan = planFrom(input({ protections }));
    expect(plan.delete).toEqual([]);
    expect(plan.kept.find((k) => k.image.imageId === `hv1:images/${DEF}-x86_64-${stamps.r2}`)?.why).toBe('release r2: release is awaiting-approval');
    expect(plan.kept.find((k) => k.image.imageId === 'ami-r1')?.why).toBe('release r1: protected by the channel applying retention');
  });

  it('keeps images younger than minAge, measured from their creation or else from the release stamp', () => {
    const young = image('r1', 'aws', { createdAt: '2026-05-31T12:00:00.000Z' });
    const plan = planFrom(input({ settings: { keep: 1, minAge: '1d', deprecateFirst: false }, images: [listed(young), listed(image('r2', 'libvirt'))] }));
    expect(plan.kept.map((k) => k.why)).toEqual(['younger than minAge 1d (made 2026-05-31T12:00:00.000Z)']);
    expect(ids(plan.delete)).toEqual([`hv1:images/${DEF}-x86_64-${stamps.r2}`]);
  });

  it('asks only about images nothing else keeps, and keeps and reports one in use', () => {
    const i = input({});
    expect(ids(imagesToCheckForUse(i))).toEqual(ids(planFrom(i).delete));
    i.images.find((l) => l.image.imageId === 'ami-r1')!.usedBy = 'instance i-1 (running) in us-east-1';
    const plan = planFrom(i);
    expect(plan.kept.find((k) => k.image.imageId === 'ami-r1')).toMatchObject({ action: 'keep', releaseId: 'r1', why: 'in use: instance i-1 (running) in us-east-1' });
    expect(ids(plan.delete)).not.toContain('ami-r1');
  });

  it('deprecateFirst: deprecates the AMIs and keeps the rest of the release; once deprecated, deletes all of it', () => {
    const settings = { keep: 1, minAge: '0s', deprecateFirst: true };
    const first = planFrom(input({ settings }));
    expect(ids(first.deprecate)).toEqual(['ami-r1', 'ami-r2']);
    expect(first.delete).toEqual([]);
    expect(first.kept.filter((k) => k.why?.startsWith('deprecateFirst')).map((k) => k.releaseId).sort()).toEqual(['r1', 'r2']);

    const images = (['r1', 'r2', 'r3'] as Rel[]).flatMap((r) => [listed(image(r, 'aws', { deprecated: r !== 'r3' })), listed(image(r, 'libvirt'))]);
    const second = planFrom(input({ settings, images }));
    expect(second.deprecate).toEqual([]);
    expect(ids(second.delete)).toEqual(ids(planFrom(input({})).delete));
  });

  it('deletes nothing while no channel has an assignment, and says why', () => {
    const plan = planFrom(input({ channels: [], holdAll: 'no channel of copr has an assignment yet' }));
    expect(plan.delete).toEqual([]);
    expect(plan.kept).toHaveLength(6);
    expect(new Set(plan.kept.map((k) => k.why))).toEqual(new Set(['no channel of copr has an assignment yet']));
  });

  it('keeps images that record no release while a protected release has no image whose name tells its stamp', () => {
    // r3 is protected by the caller only: none of its image names is known, so any volume could be r3's.
    const protections = protectionsOf([], 1, [], ['r3']);
    // The r1 volume's stamp is not linked to any release (no AMI or history of r1 is known here).
    const images = [listed(image('r1', 'libvirt')), listed(image('r2', 'aws'))];
    const plan = planFrom(input({ protections, known: [], images }));
    expect(ids(plan.delete)).toEqual(['ami-r2']);
    expect(plan.kept[0]!.why).toMatch(/records no release id, and protected release r3 has no image whose name tells its stamp/);
  });
});

describe('image names', () => {
  it('read the arch and stamp from image names, directory files and plain VPC names of the definition only', () => {
    expect(parseImageName('copr', 'copr-x86_64-20260101_000000')).toEqual({ arch: 'x86_64', stamp: '20260101_000000' });
    expect(parseImageName('copr', 'copr-aarch64-20260101_000000-qcow2.qcow2')).toEqual({ arch: 'aarch64', stamp: '20260101_000000', type: 'qcow2' });
    expect(parseImageName('copr', 'copr-x86-64-20260101-000000')).toEqual({ arch: 'x86_64', stamp: '20260101_000000' });
    expect(parseImageName('copr', 'copr-x86_64-x86_64-20260101_000000')).toBeUndefined();
    expect(parseImageName('copr-x86', 'copr-x86_64-20260101_000000')).toBeUndefined();
    expect(parseImageName('copr', 'copr-x86_64-20260101_000000.raw.partial-12-34')).toBeUndefined();
  });
});
