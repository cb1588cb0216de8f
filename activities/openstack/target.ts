// Publish target `openstack`: one Glance v2 image per artifact, found by name (and the release id property) before
// anything is created, so a retry after a worker death continues with the same image:
//   none → create; queued → upload; saving → wait; active with our data → reuse; killed/other data → replace.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Candidate, CheckResult, PublishedImage, PublishRequest, PublishScope, PublishTargetDriver } from '../types';
import { prepareImage, type DiskFormat, type PreparedImage } from '../artifacts/convert';
import { resolveAuth, type OpenstackTarget } from './auth';
import { GlanceClient, type GlanceImage } from './glance';
import { listGlanceImages } from './retention';
import { activityLog, activitySignal, heartbeat } from '../runtime/heartbeat';
import { pollUntil } from '../runtime/poll';

export type { OpenstackTarget };

export interface OpenstackTargetDeps {
  env?: NodeJS.ProcessEnv;
  qemuImg?: string;
  pollIntervalMs?: number;
  /** How long an image may stay `saving` (another upload running, or a dead one Glance has not noticed). */
  savingTimeoutMs?: number;
  /** How long after the upload the image may take to become `active`. */
  activeTimeoutMs?: number;
}

/** Image properties that mark what bootc-release created. */
export const PROPS = { releaseId: 'bootc_release_id', arch: 'bootc_release_arch', sha256: 'bootc_release_sha256' } as const;
export const TAG = 'bootc-release';

const RAW_TYPES = new Set(['raw', 'ami']);

async function hashFile(path: string, algo: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash(algo);
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20, signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function createOpenstackTarget(deps: OpenstackTargetDeps = {}): PublishTargetDriver<OpenstackTarget> {
  const interval = deps.pollIntervalMs ?? 2_000;

  /** Does this active image hold exactly our bytes? Glance's own hash is the proof; our property is the shortcut. */
  async function holdsOurData(img: GlanceImage, image: PreparedImage, signal?: AbortSignal): Promise<boolean> {
    if (img.size !== image.size || img[PROPS.sha256] !== image.sha256) return false;
    if (!img.os_hash_algo || !img.os_hash_value) return true;
    return (await hashFile(image.path, img.os_hash_algo, signal)) === img.os_hash_value;
  }

  /** Polls while the image is in one of `states`; returns it when it leaves them, is gone, or time is up. */
  async function waitWhile(glance: GlanceClient, id: string, states: string[], timeoutMs: number, signal?: AbortSignal): Promise<GlanceImage | undefined> {
    const deadline = Date.now() + timeoutMs;
    const { img } = await pollUntil(
      async () => {
        const img = await glance.get(id, signal);
        if (!img || !states.includes(img.status) || Date.now() > deadline) return { img };
        heartbeat({ imageId: id, state: img.status });
        return undefined;
      },
      // Time up is an answer here (the caller replaces a stuck image), not an error: the check decides it.
      { describe: `glance image ${id} to leave ${states.join('/')}`, intervalMs: interval, signal },
    );
    return img;
  }

  return {
    async check(target, { targetName }): Promise<CheckResult> {
      const messages = ['Checking OpenStack credentials and the image endpoint…'];
      try {
        const auth = await resolveAuth(target, targetName, undefined, deps.env);
        messages.push(`Authenticated (${auth.kind}); image endpoint ${auth.imageUrl}.`);
        await new GlanceClient(auth, `targets.${targetName}`).probe();
        messages.push('Glance lists images for this project.');
        if (auth.roles && !auth.roles.some((r) => ['member', '_member_', 'admin'].includes(r))) {
          messages.push(`The token has roles ${auth.roles.join(', ') || '(none)'}; creating images needs member: grant it or fix targets.${targetName}.credentialsEnv.`);
          return { ok: false, messages };
        }
      } catch (err) {
        return { ok: false, messages: [...messages, (err as Error).message] };
      }
      messages.push('Upload conditions met.');
      return { ok: true, messages };
    },

    async publish(request: PublishRequest & { target: OpenstackTarget }): Promise<Candidate[]> {
      const { target, targetName, artifact, imageName, releaseId } = request;
      const signal = activitySignal();
      const field = `targets.${targetName}`;
      const wanted: DiskFormat = target.diskFormat ?? (RAW_TYPES.has(artifact.type) ? 'raw' : 'qcow2');
      const image = await prepareImage(artifact, wanted, { qemuImg: deps.qemuImg, signal, where: field });
      const auth = await resolveAuth(target, targetName, signal, deps.env);
      const glance = new GlanceClient(auth, field);
      const candidate = (img: GlanceImage): Candidate[] => [
        { arch: request.arch, target: targetName, kind: 'openstack', imageId: img.id, name: imageName, type: image.format, size: image.size, sha256: image.sha256 },
      ];

      // Bounded: each round either finishes or removes/waits out one obstacle.
      for (let round = 0; round < 5; round++) {
        const ours = (await glance.findByName(imageName, signal)).filter((i) => i[PROPS.releaseId] === releaseId);
        for (const img of ours.filter((i) => i.status === 'killed')) {
          activityLog(`glance image ${img.id} (${imageName}) was killed by a failed upload; deleting it`);
          await glance.delete(img.id, signal);
        }
        const rank = { active: 0, saving: 1, uploading: 1, importing: 1, queued: 2 } as Record<string, number>;
        const img = ours.filter((i) => i.status in rank).sort((a, b) => rank[a.status] - rank[b.status])[0];

        if (img?.status === 'active') {
          if (await holdsOurData(img, image, signal)) {
            heartbeat({ imageId: img.id, state: 'active', bytesSent: 0, size: image.size });
            activityLog(`glance image ${img.id} (${imageName}) already holds this artifact; reused it`);
            return candidate(img);
          }
          activityLog(`glance image ${img.id} (${imageName}) holds other data; replacing it`);
          await glance.delete(img.id, signal);
          continue;
        }
        if (img && img.status !== 'queued') {
          // Someone (a previous attempt whose connection Glance has not dropped yet) is uploading: wait for it. An
          // image stuck in saving (its glance-api died mid-upload) never moves again: replace it.
          const after = await waitWhile(glance, img.id, ['saving', 'uploading', 'importing'], deps.savingTimeoutMs ?? 15 * 60_000, signal);
          if (after && after.status === img.status) {
            activityLog(`glance image ${img.id} (${imageName}) stayed ${img.status}; deleting it`);
            await glance.delete(img.id, signal);
          }
          continue;
        }

        const target_ = img ??
          (await glance.create(
            {
              name: imageName,
              disk_format: image.format,
              container_format: 'bare',
              visibility: target.visibility,
              tags: [TAG],
              [PROPS.releaseId]: releaseId,
              [PROPS.arch]: request.arch,
              [PROPS.sha256]: image.sha256,
            },
            signal,
          ));
        heartbeat({ imageId: target_.id, state: 'uploading', bytesSent: 0, size: image.size });
        const sent = await glance.upload(target_.id, image, {
          hashAlgo: 'sha512',
          signal,
          onBytes: (bytesSent) => heartbeat({ imageId: target_.id, state: 'uploading', bytesSent, size: image.size }),
        });
        if (sent === 'conflict') continue;

        const done = await waitWhile(glance, target_.id, ['queued', 'saving', 'uploading', 'importing'], deps.activeTimeoutMs ?? 30 * 60_000, signal);
        if (!done || done.status !== 'active') {
          if (done) await glance.delete(done.id, signal);
          throw new Error(`glance image ${target_.id} (${imageName}) ended ${done?.status ?? 'deleted'} after the upload; the retry uploads a new one`);
        }
        if (done.os_hash_algo === 'sha512' && done.os_hash_value !== sent.digest) {
          await glance.delete(done.id, signal);
          throw new Error(`glance image ${done.id} (${imageName}) hash differs from what was sent; deleted it, the retry uploads again`);
        }
        heartbeat({ imageId: done.id, state: 'active', bytesSent: image.size, size: image.size });
        return candidate(done);
      }
      throw new Error(`glance image ${imageName}: could not settle its state after 5 rounds; retrying`);
    },

    async delete(target, candidate): Promise<void> {
      const auth = await resolveAuth(target, candidate.target, undefined, deps.env);
      await new GlanceClient(auth, `targets.${candidate.target}`).delete(candidate.imageId);
    },

    /** Releases with images here, from the `bootc-release` tag and the release and arch properties. */
    async listReleases(target, targetName): Promise<PublishScope[]> {
      const signal = activitySignal();
      const glance = new GlanceClient(await resolveAuth(target, targetName, signal, deps.env), `targets.${targetName}`);
      const scopes = new Map<string, PublishScope>();
      for (const img of await glance.listTagged(TAG, signal)) {
        const releaseId = img[PROPS.releaseId];
        const arch = img[PROPS.arch];
        if (typeof releaseId !== 'string' || typeof arch !== 'string') continue;
        const scope = scopes.get(`${releaseId}/${arch}`) ?? { releaseId, arch: arch as PublishScope['arch'], targetName, imageNames: [] };
        if (!scope.imageNames.includes(img.name)) scope.imageNames.push(img.name);
        scopes.set(`${releaseId}/${arch}`, scope);
      }
      return [...scopes.values()];
    },

    /** By name, and only images that carry this release's id: another release may use the same name. */
    async deleteRelease(target, scope): Promise<string[]> {
      const signal = activitySignal();
      const glance = new GlanceClient(await resolveAuth(target, scope.targetName, signal, deps.env), `targets.${scope.targetName}`);
      const removed: string[] = [];
      for (const name of scope.imageNames)
        for (const img of await glance.findByName(name, signal)) {
          if (img[PROPS.releaseId] !== scope.releaseId) continue;
          await glance.delete(img.id, signal);
          removed.push(`glance image ${img.id} (${name}, ${img.status})`);
        }
      return removed;
    },

    /** Retention: the definition's images here, by tag and name (activities/openstack/retention.ts). */
    async listImages(target, targetName, definition): Promise<PublishedImage[]> {
      const signal = activitySignal();
      const glance = new GlanceClient(await resolveAuth(target, targetName, signal, deps.env), `targets.${targetName}`);
      return await listGlanceImages(glance, PROPS, TAG, targetName, definition, signal);
    },
  };
}
