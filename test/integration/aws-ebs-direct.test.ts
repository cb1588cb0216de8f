// EBS direct upload against moto: what arrives is read back block by block, and what is sent is counted with a
// recording middleware (moto keeps blocks but validates neither checksums nor counts).
import { GetSnapshotBlockCommand, ListSnapshotBlocksCommand, type EBSClient } from '@aws-sdk/client-ebs';
import { DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { awsClients } from '../../activities/aws/clients';
import { EBS_BLOCK_SIZE, uploadEbsDirect, type EbsUploadProgress } from '../../activities/aws/ebs-direct-upload';
import { AWS_TAGS } from '../../activities/aws/tags';
import { recorder, sparseImage, tempDir } from './aws-helpers';

const rig = inject('rig');
const region = 'us-west-2';
const MiB = 1024 * 1024;

function image(name: string) {
  const dir = tempDir(rig.dir, 'aws-ebs');
  // 96 MiB and a bit, so the last block is partial; data straddles block edges and ends the file.
  const size = 96 * MiB + 100 * 1024;
  return sparseImage(path.join(dir, name), size, [
    { offset: 0, length: 1 * MiB },
    { offset: 10 * MiB + 300 * 1024, length: 700 * 1024 },
    { offset: 40 * MiB, length: 3 * MiB },
    { offset: 96 * MiB + 10 * 1024, length: 50 * 1024 },
  ]);
}

function dataBlocksOf(file: string): Map<number, Buffer> {
  const bytes = readFileSync(file);
  const blocks = new Map<number, Buffer>();
  for (let i = 0; i * EBS_BLOCK_SIZE < bytes.length; i++) {
    const b = Buffer.alloc(EBS_BLOCK_SIZE);
    bytes.copy(b, 0, i * EBS_BLOCK_SIZE, Math.min(bytes.length, (i + 1) * EBS_BLOCK_SIZE));
    if (b.some((x) => x !== 0)) blocks.set(i, b);
  }
  return blocks;
}

async function readBack(ebs: EBSClient, snapshotId: string, size: number): Promise<Buffer> {
  const out = Buffer.alloc(Math.ceil(size / EBS_BLOCK_SIZE) * EBS_BLOCK_SIZE);
  const list = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snapshotId }));
  for (const b of list.Blocks ?? []) {
    const got = await ebs.send(new GetSnapshotBlockCommand({ SnapshotId: snapshotId, BlockIndex: b.BlockIndex, BlockToken: b.BlockToken }));
    Buffer.from(await got.BlockData!.transformToByteArray()).copy(out, b.BlockIndex! * EBS_BLOCK_SIZE);
  }
  return out.subarray(0, size);
}

function setup() {
  const rec = recorder();
  const clients = awsClients(region, { endpoint: rig.motoEndpoint }, rec.deps);
  const tags = { [AWS_TAGS.releaseId]: `r-${randomUUID()}`, [AWS_TAGS.arch]: 'x86_64', [AWS_TAGS.step]: 'snapshot' };
  const snapshotsTagged = async () =>
    (await clients.ec2().send(new DescribeSnapshotsCommand({ Filters: [{ Name: `tag:${AWS_TAGS.releaseId}`, Values: [tags[AWS_TAGS.releaseId]] }] })))
      .Snapshots ?? [];
  return { rec, clients, tags, snapshotsTagged, req: { tags, clientToken: randomUUID(), concurrency: 4 } };
}

describe('ebs direct upload', () => {
  it('uploads only the data blocks of a sparse image, which reads back byte-identical', async () => {
    const file = image('disk.raw');
    const { rec, clients, req } = setup();
    const result = await uploadEbsDirect(clients.ebs(), clients.ec2(), { ...req, file });
    const expected = dataBlocksOf(file);
    expect(result.dataBlocks).toBe(expected.size);
    expect(result.blocksSent).toBe(expected.size);
    expect(result.bytesSent).toBe(expected.size * EBS_BLOCK_SIZE);
    expect(result.volumeSizeGiB).toBe(1);
    const puts = rec.of('PutSnapshotBlockCommand');
    expect(puts.map((p) => p.input.BlockIndex).sort((a, b) => a - b)).toEqual([...expected.keys()]);
    for (const p of puts) {
      expect(p.input.ChecksumAlgorithm).toBe('SHA256');
      expect(p.input.Checksum).toBe(createHash('sha256').update(expected.get(p.input.BlockIndex)!).digest('base64'));
      expect(p.input.DataLength).toBe(EBS_BLOCK_SIZE);
    }
    const linear = createHash('sha256');
    for (const i of [...expected.keys()].sort((a, b) => a - b)) linear.update(createHash('sha256').update(expected.get(i)!).digest());
    expect(rec.of('CompleteSnapshotCommand').map((c) => c.input)).toEqual([
      { SnapshotId: result.snapshotId, ChangedBlocksCount: expected.size, Checksum: linear.digest('base64'), ChecksumAlgorithm: 'SHA256', ChecksumAggregationMethod: 'LINEAR' },
    ]);
    expect(rec.of('StartSnapshotCommand')[0].input).toMatchObject({ VolumeSize: 1, ClientToken: req.clientToken });
    const back = await readBack(clients.ebs(), result.snapshotId, readFileSync(file).length);
    expect(back.equals(readFileSync(file))).toBe(true);
  });

  it('resumes an aborted upload from its progress without re-sending confirmed blocks or starting a second snapshot', async () => {
    const file = image('disk.raw');
    const { rec, clients, req, snapshotsTagged } = setup();
    const abort = new AbortController();
    let last: EbsUploadProgress | undefined;
    let confirmations = 0;
    await expect(
      uploadEbsDirect(clients.ebs(), clients.ec2(), {
        ...req,
        file,
        signal: abort.signal,
        onProgress: (p) => {
          last = p;
          if (++confirmations === 5) abort.abort(new Error('worker killed'));
        },
      }),
    ).rejects.toThrow();
    const confirmedFirst = new Set(rec.of('PutSnapshotBlockCommand').filter((c) => c.ok).map((c) => c.input.BlockIndex));
    expect(confirmedFirst.size).toBeGreaterThanOrEqual(5);
    rec.clear();

    const result = await uploadEbsDirect(clients.ebs(), clients.ec2(), { ...req, file, resume: last });
    expect(result.snapshotId).toBe(last!.snapshotId);
    const resent = rec.of('PutSnapshotBlockCommand').map((c) => c.input.BlockIndex).filter((i) => confirmedFirst.has(i));
    expect(resent).toEqual([]);
    expect(rec.of('StartSnapshotCommand')).toEqual([]);
    expect((await snapshotsTagged()).map((s) => s.SnapshotId)).toEqual([result.snapshotId]);
    const back = await readBack(clients.ebs(), result.snapshotId, readFileSync(file).length);
    expect(back.equals(readFileSync(file))).toBe(true);
  });

  it('finds its snapshot by tag when the progress was lost, and reuses a completed one without sending anything', async () => {
    const file = image('disk.raw');
    const { rec, clients, req, snapshotsTagged } = setup();
    const abort = new AbortController();
    await expect(
      uploadEbsDirect(clients.ebs(), clients.ec2(), { ...req, file, signal: abort.signal, onProgress: () => abort.abort() }),
    ).rejects.toThrow();
    const first = await uploadEbsDirect(clients.ebs(), clients.ec2(), { ...req, file });
    expect(rec.of('StartSnapshotCommand')).toHaveLength(1);
    rec.clear();
    const again = await uploadEbsDirect(clients.ebs(), clients.ec2(), { ...req, file });
    expect(again).toMatchObject({ snapshotId: first.snapshotId, reused: true, blocksSent: 0 });
    expect(rec.of('PutSnapshotBlockCommand')).toEqual([]);
    expect(rec.of('CompleteSnapshotCommand')).toEqual([]);
    const snapshots = await snapshotsTagged();
    expect(snapshots.map((s) => s.SnapshotId)).toEqual([first.snapshotId]);
    expect(snapshots[0].Tags).toContainEqual({ Key: AWS_TAGS.upload, Value: 'complete' });
  });
});
