// Activation: make the approved images the ones builders boot from. Fedora Copr's farm keeps an image map in its
// Ansible inventory (`copr_builder_images: {aws: {x86_64: ami-...}, ibm_cloud: {s390x: {us_east: r014-...}}}`);
// we write the same shape to a file, a git repository, SSM parameters, or hand it to a command.
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PutParameterCommand, GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { ApplicationFailure } from '@temporalio/common';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { Activation, ReleasePlan } from '../../config/schema';
import type { Candidate } from '../types';
import { commandEnv } from '../command/env';
import type { ActivationRecord } from '../../workflows/messages';

const run = promisify(execFile);

export type ImageMap = Record<string, Record<string, string | Record<string, string>>>;

/**
 * target → arch → image id. When one (target, arch) has several images the value is keyed by what tells them apart:
 * the region (AWS copies, IBM regions; `_` for `-` as Ansible variables spell them) or the image type (a directory
 * keeping qcow2 and raw). libvirt hypervisors all hold the same volume name, which is what builders are booted from.
 */
export function buildImageMap(candidates: Candidate[]): ImageMap {
  const map: ImageMap = {};
  const groups = new Map<string, Candidate[]>();
  for (const c of candidates) {
    const key = `${c.target}\u0000${c.arch}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  for (const group of groups.values()) {
    const { target, arch, kind } = group[0]!;
    map[target] ??= {};
    if (kind === 'libvirt') map[target][arch] = group[0]!.name;
    else if (group.length === 1) map[target][arch] = group[0]!.imageId;
    else map[target][arch] = Object.fromEntries(group.map((c) => [c.region ? c.region.replace(/-/g, '_') : c.type, c.imageId]));
  }
  return map;
}

/** The header line that lets a retried activation find what it replaced the first time. */
const HEADER = '# bootc-release: ';

interface FileHeader {
  releaseId: string;
  previousReleaseId?: string;
  previous?: unknown;
}

async function writeImageMapFile(file: string, key: string, map: ImageMap, releaseId: string): Promise<unknown> {
  const existing = await readFile(file, 'utf8').catch(() => undefined);
  let previous: unknown;
  let previousReleaseId: string | undefined;
  let doc: Record<string, unknown> = {};
  if (existing !== undefined) {
    const headerLine = existing.split('\n').find((l) => l.startsWith(HEADER));
    const header = headerLine ? (JSON.parse(headerLine.slice(HEADER.length)) as FileHeader) : undefined;
    doc = (parseYaml(existing) as Record<string, unknown> | null) ?? {};
    if (header?.releaseId === releaseId) {
      // A retry: this release already wrote the file; keep what the first attempt replaced.
      previous = header.previous;
      previousReleaseId = header.previousReleaseId;
    } else {
      previous = doc[key];
      previousReleaseId = header?.releaseId;
    }
  }
  doc[key] = map;
  const header: FileHeader = { releaseId, previousReleaseId, previous };
  const text = `${HEADER}${JSON.stringify(header)}\n# Written by bootc-release; edits to ${key} are replaced by the next activation.\n${toYaml(doc)}`;
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
  return previous;
}

async function activateOne(a: Activation, map: ImageMap, plan: ReleasePlan): Promise<{ target: string; previous?: unknown }> {
  switch (a.kind) {
    case 'image-map-file':
      return { target: a.path, previous: await writeImageMapFile(a.path, a.key, map, plan.releaseId) };
    case 'image-map-git': {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'bootc-release-git-'));
      try {
        await run('git', ['clone', '--quiet', '--depth', '1', '--branch', a.branch, a.repository, dir]);
        const previous = await writeImageMapFile(path.join(dir, a.file), a.key, map, plan.releaseId);
        await run('git', ['-C', dir, 'add', a.file]);
        const { stdout } = await run('git', ['-C', dir, 'status', '--porcelain']);
        if (stdout.trim()) {
          await run('git', ['-C', dir, '-c', 'user.name=bootc-release', '-c', 'user.email=bootc-release@localhost', 'commit', '--quiet', '-m', `Activate images of release ${plan.releaseId}`]);
          await run('git', ['-C', dir, 'push', '--quiet', 'origin', `HEAD:${a.branch}`]);
        }
        return { target: `${a.repository}#${a.branch}:${a.file}`, previous };
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    case 'ssm-parameter': {
      const ssm = new SSMClient({ region: a.region, endpoint: a.credentials.endpoint });
      const previous: Record<string, string | undefined> = {};
      for (const target of Object.values(map))
        for (const [arch, value] of Object.entries(target)) {
          if (typeof value !== 'string' || !value.startsWith('ami-')) continue;
          const name = a.name.replace('{arch}', arch);
          previous[name] = await ssm
            .send(new GetParameterCommand({ Name: name }))
            .then((r) => r.Parameter?.Value)
            .catch(() => undefined);
          await ssm.send(new PutParameterCommand({ Name: name, Value: value, Type: 'String', DataType: 'aws:ec2:image', Overwrite: true }));
        }
      return { target: `ssm:${a.region}:${a.name}`, previous };
    }
    case 'command': {
      const [cmd, ...args] = a.command;
      await new Promise<void>((resolve, reject) => {
        const child = spawn(cmd!, args, { stdio: ['pipe', 'inherit', 'inherit'], env: commandEnv(a.passEnv, { BOOTC_RELEASE_ID: plan.releaseId }) });
        child.once('error', reject);
        child.once('exit', (code) =>
          code === 0 ? resolve() : reject(new Error(`activation command ${a.command.join(' ')} exited ${code}`)),
        );
        child.stdin.end(JSON.stringify({ releaseId: plan.releaseId, imageMap: map }));
      });
      return { target: `command:${a.command.join(' ')}` };
    }
  }
}

export async function activate(input: {
  plan: ReleasePlan;
  channel: string;
  candidates: Candidate[];
  approvedBy: string;
}): Promise<ActivationRecord> {
  const { plan, channel, candidates } = input;
  if (candidates.length === 0) throw ApplicationFailure.nonRetryable('nothing to activate: no image was chosen', 'ConfigError');
  const map = buildImageMap(candidates);
  const steps = plan.definition.channels[channel]?.activation ?? [];
  const replaced: ActivationRecord['replaced'] = [];
  for (const step of steps) replaced.push(await activateOne(step, map, plan));
  return { channel, imageMap: map, replaced, writtenTo: replaced.map((r) => r.target), at: new Date().toISOString() };
}
