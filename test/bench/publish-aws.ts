// How many bytes each AWS path moves for a typical bib AMI: an 8 GiB sparse raw disk, a quarter of it data.
// EBS direct sends data blocks only; the S3 path uploads the whole file, holes included (then ImportSnapshot, which
// moto lacks: its upload is what moves the bytes and what is timed here). Runs against its own moto. --quick: 1 GiB.
import { AbortMultipartUploadCommand, CreateBucketCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { awsClients, type AwsClientDeps } from '../../activities/aws/clients';
import { EBS_BLOCK_SIZE, uploadEbsDirect } from '../../activities/aws/ebs-direct-upload';
import { uploadToS3 } from '../../activities/aws/s3-import';
import { startMoto } from '../../scripts/servers/moto';
import { QUICK, type BenchSuite } from './suite';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const APPARENT = QUICK ? 1 * GiB : 8 * GiB;
const EXTENTS = 64;
const EXTENT = (APPARENT / 4) / EXTENTS; // 32 MiB each: 2 GiB of data (4 MiB with --quick)
const credentials = { accessKeyId: 'bench', secretAccessKey: 'bench' };

/** Data extents spread over the disk, starting 4 KiB past a block edge as filesystem extents do. */
function makeImage(file: string): number {
  const fd = openSync(file, 'w');
  try {
    ftruncateSync(fd, APPARENT);
    const chunk = randomBytes(8 * MiB);
    for (let e = 0; e < EXTENTS; e++) {
      const start = e * (APPARENT / EXTENTS) + 4096 * (e % 8);
      for (let off = 0; off < EXTENT; off += chunk.length) {
        chunk.writeUInt32LE(e * 1000 + off / MiB, 0); // no two chunks alike
        writeSync(fd, chunk, 0, Math.min(chunk.length, EXTENT - off), start + off);
      }
    }
  } finally {
    closeSync(fd);
  }
  return EXTENTS * EXTENT;
}

function motoPid(port: string): number | undefined {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (cmd.some((a) => a.endsWith('moto_server')) && cmd.includes(port)) return Number(pid);
    } catch {
      // the process went away while we looked
    }
  }
  return undefined;
}

const memMiB = (pid: number | undefined, field: 'VmRSS' | 'VmHWM') => {
  if (!pid) return -1;
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+) kB`));
  return m ? Math.round(Number(m[1]) / 1024) : -1;
};

const suite: BenchSuite = {
  title: `publish-aws: EBS direct vs S3 upload (${APPARENT / GiB} GiB sparse raw, 25 % data, moto on loopback)`,
  async run(log) {
    const dir = path.resolve(__dirname, '../../.rig/bench-publish-aws');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const moto = await startMoto(dir);
    const pid = motoPid(new URL(moto.address).port);
    try {
      const file = path.join(dir, 'disk.raw');
      log(`Writing ${APPARENT / GiB} GiB sparse image with ${EXTENTS} data extents…`);
      const dataBytes = makeImage(file);
      const region = 'us-east-1';

      const ebsClients = awsClients(region, { endpoint: moto.address }, { credentials });
      let t0 = performance.now();
      const ebs = await uploadEbsDirect(ebsClients.ebs(), ebsClients.ec2(), {
        file,
        tags: { 'bootc-release:release-id': 'bench' },
        clientToken: 'bench-ebs',
        concurrency: 16,
      });
      const ebsDirectSeconds = (performance.now() - t0) / 1000;
      const rssAfterEbs = memMiB(pid, 'VmRSS');

      // moto's CompleteMultipartUpload joins every part in memory (8 GiB, twice): the bench answers that one small
      // request itself and aborts the upload so moto frees the parts. Every byte still travels in UploadPart.
      let uploadId: string | undefined;
      const intercept: AwsClientDeps['onClient'] = (client, service) => {
        if (service !== 's3') return;
        client.middlewareStack.add(
          (next: any, context: any) => async (args: any) => {
            if (context.commandName !== 'CompleteMultipartUploadCommand') return next(args);
            uploadId = args.input.UploadId;
            return { output: { $metadata: {}, Bucket: args.input.Bucket, Key: args.input.Key, ETag: '"bench"' }, response: {} };
          },
          { step: 'initialize', name: 'benchCompleteMultipart' },
        );
      };
      const s3Clients = awsClients(region, { endpoint: moto.address }, { credentials, onClient: intercept });
      const s3 = s3Clients.s3();
      await s3.send(new CreateBucketCommand({ Bucket: 'bench' }));
      t0 = performance.now();
      const up = await uploadToS3(s3, { file, sha256: 'bench', bucket: 'bench', key: 'disk.raw', partSize: 64 * MiB, queueSize: 4 });
      const s3ImportSeconds = (performance.now() - t0) / 1000;
      if (uploadId) await s3.send(new AbortMultipartUploadCommand({ Bucket: 'bench', Key: 'disk.raw', UploadId: uploadId }));

      const figures = {
        apparentBytes: APPARENT,
        dataBytes,
        ebsDirectBytes: ebs.bytesSent,
        ebsDirectBlocks: ebs.blocksSent,
        ebsDirectBytesRatio: +(ebs.bytesSent / dataBytes).toFixed(4),
        ebsDirectSeconds: +ebsDirectSeconds.toFixed(2),
        s3ImportBytes: up.bytesSent,
        s3ImportBytesRatio: +(up.bytesSent / dataBytes).toFixed(4),
        s3ImportSeconds: +s3ImportSeconds.toFixed(2),
        motoRssAfterEbsMiB: rssAfterEbs,
        motoPeakRssMiB: memMiB(pid, 'VmHWM'),
      };
      const row = (name: string, a: string, b: string) => log(`${name.padEnd(26)}${a.padStart(16)}${b.padStart(16)}`);
      row('', 'EBS direct', 'S3 upload');
      row('bytes sent', `${(figures.ebsDirectBytes / MiB).toFixed(0)} MiB`, `${(figures.s3ImportBytes / MiB).toFixed(0)} MiB`);
      row('÷ data bytes (goal ≤1.05)', figures.ebsDirectBytesRatio.toFixed(3), figures.s3ImportBytesRatio.toFixed(3));
      row('seconds', figures.ebsDirectSeconds.toFixed(1), figures.s3ImportSeconds.toFixed(1));
      row('MiB/s of data published', (dataBytes / MiB / ebsDirectSeconds).toFixed(0), (dataBytes / MiB / s3ImportSeconds).toFixed(0));
      log(`data ${dataBytes / MiB} MiB in ${APPARENT / GiB} GiB; ${EBS_BLOCK_SIZE / 1024} KiB blocks; moto RSS after EBS ${rssAfterEbs} MiB, peak ${figures.motoPeakRssMiB} MiB`);
      log('(S3 path: ImportSnapshot then runs server-side in AWS, typically many minutes; moto cannot import.)');
      return figures;
    } finally {
      await moto.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export default suite;
