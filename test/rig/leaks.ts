// What a release left in the clouds, counted through each cloud's own API, never through the release's own record:
// EC2 instances that are not terminated, EBS volumes, snapshots and AMIs (moto, by the release tag), S3 objects and
// unfinished multipart uploads (moto's S3 as the AWS import bucket and as IBM COS, by the release id in the key),
// instances, floating IPs and custom images of the IBM Cloud VPC stand-in, libvirt domains and volumes (the real
// libvirtd), Glance images (a real glance-api), files in directory targets, and on the builder side claims on static
// hosts and allocator tickets nobody closed. `leftBehind` is what remains once the
// resources behind the candidates are set aside; `duplicates` names images that exist twice.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { ARCHES } from '../../config/constants';
import { resourceName } from '../../activities/naming';
import { parseCosHref } from '../../activities/ibmcloud/cos-upload';
import type { Candidate } from '../../activities/types';
import type { IbmCloudStandin } from '../standins/ibm-cloud-api';
import { identityHeaders } from '../../scripts/servers/glance';
import { refreshPool, virsh } from '../../scripts/servers/libvirtd';

export type ResourceKind =
  | 'ec2-instance'
  | 'ebs-volume'
  | 'ebs-snapshot'
  | 'ami'
  | 's3-object'
  | 's3-multipart-upload'
  | 'ibm-instance'
  | 'ibm-floating-ip'
  | 'ibm-image'
  | 'libvirt-domain'
  | 'libvirt-volume'
  | 'glance-image'
  | 'file'
  | 'static-claim'
  | 'allocator-ticket';

export interface CloudResource {
  kind: ResourceKind;
  id: string;
  /** Region, bucket, pool or directory. */
  where: string;
  /** Image names, where a duplicate would show. */
  name?: string;
}

export interface LeakSources {
  /** moto: EC2 in these regions; S3 in these buckets (import buckets and COS buckets). */
  moto?: { endpoint: string; regions: string[]; buckets?: { name: string; region: string }[] };
  ibm?: IbmCloudStandin;
  libvirt?: { pools: string[] };
  glance?: { address: string; project: string };
  /** Directory targets: files named after the definition. */
  directories?: string[];
  /** Static builder hosts: the claim directories (`<workDir>/.claims`) a release's claims would be in. */
  claims?: (release: ReleaseRef) => string[];
  /** A resalloc-like allocator: tickets issued (`<ticket> <release id> <arch>` lines) and closed (`<ticket>`). */
  tickets?: { issued(): string[]; closed(): string[] };
}

/** A release as the clouds know it: by its id (tags, keys, builder names) and its definition (image names). */
export interface ReleaseRef {
  id: string;
  definition: string;
}

const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const IMAGE_KINDS: ResourceKind[] = ['ami', 'ibm-image', 'libvirt-volume', 'glance-image', 'file'];

export class LeakCounter {
  constructor(private readonly sources: LeakSources) {}

  /** Everything of the release that exists now, in every cloud. */
  async resources(release: ReleaseRef): Promise<CloudResource[]> {
    const found = await Promise.all([
      this.aws(release),
      this.s3(release),
      this.ibm(release),
      this.libvirt(release),
      this.glance(release),
      this.files(release),
    ]);
    return [...found.flat(), ...this.builderHosts(release)];
  }

  /** What exists beyond the resources behind `candidates` (their images, snapshots and COS objects). */
  async leftBehind(release: ReleaseRef, candidates: Candidate[] = []): Promise<CloudResource[]> {
    const backing = backingIds(candidates);
    return (await this.resources(release)).filter((r) => !backing.has(`${r.kind}:${r.id}`));
  }

  /** Image names that exist more than once at one place (a region, a pool, a project, a directory). */
  async duplicates(release: ReleaseRef): Promise<string[]> {
    const seen = new Map<string, number>();
    for (const r of await this.resources(release))
      if (IMAGE_KINDS.includes(r.kind) && r.name) seen.set(`${r.kind} ${r.where}/${r.name}`, (seen.get(`${r.kind} ${r.where}/${r.name}`) ?? 0) + 1);
    return [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} ×${n}`);
  }

  private async aws({ id, definition }: ReleaseRef): Promise<CloudResource[]> {
    const moto = this.sources.moto;
    if (!moto) return [];
    const Filters = [{ Name: 'tag:bootc-release:release-id', Values: [id] }];
    const out: CloudResource[] = [];
    for (const region of moto.regions) {
      const ec2 = new EC2Client({ region, endpoint: moto.endpoint, credentials });
      const reservations = (await ec2.send(new DescribeInstancesCommand({ Filters }))).Reservations ?? [];
      for (const i of reservations.flatMap((r) => r.Instances ?? []))
        if (i.State?.Name !== 'terminated') out.push({ kind: 'ec2-instance', id: i.InstanceId!, where: region });
      for (const v of (await ec2.send(new DescribeVolumesCommand({ Filters }))).Volumes ?? [])
        out.push({ kind: 'ebs-volume', id: v.VolumeId!, where: region });
      // AMIs by the release's tag or by the definition's image name (an AMI whose tags never came is still there),
      // and the snapshots behind them, tagged or not.
      const tagged = (await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters }))).Images ?? [];
      const named = (await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [`${definition}-*`] }] }))).Images ?? [];
      const amis = new Map([...tagged, ...named].filter((i) => i.State !== 'deregistered').map((i) => [i.ImageId!, i]));
      const snapshots = new Set<string>();
      for (const s of (await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters }))).Snapshots ?? []) snapshots.add(s.SnapshotId!);
      for (const i of amis.values()) {
        out.push({ kind: 'ami', id: i.ImageId!, where: region, name: i.Name });
        for (const m of i.BlockDeviceMappings ?? []) if (m.Ebs?.SnapshotId) snapshots.add(m.Ebs.SnapshotId);
      }
      for (const s of snapshots) out.push({ kind: 'ebs-snapshot', id: s, where: region });
      ec2.destroy();
    }
    return out;
  }

  private async s3({ id }: ReleaseRef): Promise<CloudResource[]> {
    const moto = this.sources.moto;
    const out: CloudResource[] = [];
    for (const bucket of moto?.buckets ?? []) {
      const s3 = new S3Client({ region: bucket.region, endpoint: moto!.endpoint, credentials, forcePathStyle: true });
      for (const o of (await s3.send(new ListObjectsV2Command({ Bucket: bucket.name }))).Contents ?? [])
        if (o.Key!.includes(id)) out.push({ kind: 's3-object', id: `${bucket.name}/${o.Key}`, where: bucket.name });
      for (const u of (await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket.name }))).Uploads ?? [])
        if (u.Key!.includes(id)) out.push({ kind: 's3-multipart-upload', id: `${bucket.name}/${u.Key}#${u.UploadId}`, where: bucket.name });
      s3.destroy();
    }
    return out;
  }

  /** The stand-in's own view (the cloud here), without reading through its API, which would advance its transitions. */
  private async ibm({ id, definition }: ReleaseRef): Promise<CloudResource[]> {
    const ibm = this.sources.ibm;
    if (!ibm) return [];
    const builders = builderNames(id);
    const live = (r: Record<string, any>) => r.status !== 'deleting';
    return [
      ...ibm.instances().filter((i) => live(i) && builders.has(i.name)).map((i) => ({ kind: 'ibm-instance' as const, id: i.id, where: i.region })),
      ...ibm.floatingIps().filter((f) => builders.has(f.name)).map((f) => ({ kind: 'ibm-floating-ip' as const, id: f.id, where: f.region })),
      ...ibm
        .images()
        .filter((i) => live(i) && i.name.startsWith(`${definition}-`))
        .map((i) => ({ kind: 'ibm-image' as const, id: i.id, where: i.region, name: i.name })),
    ];
  }

  private async libvirt({ id, definition }: ReleaseRef): Promise<CloudResource[]> {
    const pools = this.sources.libvirt?.pools;
    if (!pools) return [];
    const builders = builderNames(id);
    const out: CloudResource[] = [];
    const domains = (await virsh('list', '--all', '--name')).split('\n').map((l) => l.trim());
    for (const d of domains) if (builders.has(d)) out.push({ kind: 'libvirt-domain', id: d, where: 'qemu:///system' });
    for (const pool of pools) {
      await refreshPool(pool);
      const names = (await virsh('vol-list', '--pool', pool)).split('\n').map((l) => l.trim().split(/\s+/)[0]!).filter(Boolean);
      for (const name of names)
        if (name.startsWith(`${definition}-`) || builders.has(name.replace(/\.qcow2$/, '')))
          out.push({ kind: 'libvirt-volume', id: `${pool}/${name}`, where: pool, name });
    }
    return out;
  }

  private async glance({ id }: ReleaseRef): Promise<CloudResource[]> {
    const g = this.sources.glance;
    if (!g) return [];
    const res = await fetch(`${g.address}/v2/images?limit=1000`, { headers: identityHeaders(g.project) });
    if (!res.ok) throw new Error(`glance-api listed images with ${res.status}`);
    const { images } = (await res.json()) as { images: { id: string; name: string; bootc_release_id?: string }[] };
    return images.filter((i) => i.bootc_release_id === id).map((i) => ({ kind: 'glance-image' as const, id: i.id, where: g.project, name: i.name }));
  }

  private builderHosts(release: ReleaseRef): CloudResource[] {
    const out: CloudResource[] = [];
    for (const dir of this.sources.claims?.(release) ?? [])
      for (const claim of existsSync(dir) ? readdirSync(dir) : []) {
        const owner = path.join(dir, claim, 'owner');
        if (existsSync(owner) && readFileSync(owner, 'utf8').startsWith(`${release.id}/`)) out.push({ kind: 'static-claim', id: claim, where: dir });
      }
    const t = this.sources.tickets;
    if (t) {
      const closed = new Set(t.closed());
      for (const line of t.issued()) {
        const [ticket, releaseId, arch] = line.split(' ');
        if (releaseId === release.id && !closed.has(ticket!)) out.push({ kind: 'allocator-ticket', id: ticket!, where: arch! });
      }
    }
    return out;
  }

  private async files({ definition }: ReleaseRef): Promise<CloudResource[]> {
    const out: CloudResource[] = [];
    for (const dir of this.sources.directories ?? [])
      for (const f of await readdir(dir).catch(() => [] as string[]))
        if (f.startsWith(`${definition}-`)) out.push({ kind: 'file', id: path.join(dir, f), where: dir, name: f.endsWith('.sha256') ? undefined : f });
    return out;
  }
}

/** Builder VMs and their disks are named after the release and the architecture (activities/naming.ts). */
const builderNames = (releaseId: string) => new Set(ARCHES.map((arch) => resourceName(releaseId, arch, 'builder')));

/** `kind:id` of every resource a candidate stands on. */
export function backingIds(candidates: Candidate[]): Set<string> {
  const ids = new Set<string>();
  for (const c of candidates) {
    switch (c.kind) {
      case 'aws':
        ids.add(`ami:${c.imageId}`);
        break;
      case 'ibmcloud':
        ids.add(`ibm-image:${c.imageId}`);
        break;
      case 'openstack':
        ids.add(`glance-image:${c.imageId}`);
        break;
      case 'libvirt':
        ids.add(`libvirt-volume:${c.imageId.slice(c.imageId.lastIndexOf(':') + 1)}`);
        break;
      case 'directory':
        ids.add(`file:${c.imageId}`).add(`file:${c.imageId}.sha256`);
        break;
    }
    for (const r of c.resources ?? []) {
      if (r.kind === 'snapshot') ids.add(`ebs-snapshot:${r.id}`);
      const cos = r.kind === 'cos-object' ? parseCosHref(r.id) : undefined;
      if (cos) ids.add(`s3-object:${cos.bucket}/${cos.key}`);
    }
  }
  return ids;
}
