// The `static` builder provider: a fixed list of existing hosts (a lab machine, a pet VM per architecture).
// A host is claimed for one release and architecture with an atomic rename on the host itself, so two workers (or
// two architectures) never get the same host, and a retry of the same release finds its own claim again.
// Claims are named after the address the worker used: hosts that share a filesystem (NFS, the test rig) still
// claim separately.
import path from 'node:path/posix';
import { ApplicationFailure } from '@temporalio/common';
import type { Builder } from '../../config/schema';
import type { BuilderHost, BuilderProvider, CheckResult, OwnedResource, StepContext } from '../types';
import { credentialsOf } from '../ssh/builder-session';
import { shellQuote, withSsh, type SshEndpoint } from '../ssh/connection';
import { parseFields } from '../ssh/detached';
import { learnHostKey, shortKey } from '../ssh/host-key-pinning';
import { FailureType } from '../failures';

export type StaticBuilder = Extract<Builder, { provider: 'static' }>;

const claimsDir = (builder: StaticBuilder) => path.join(builder.workDir, '.claims');
const claimPath = (builder: StaticBuilder, e: SshEndpoint) =>
  path.join(claimsDir(builder), `${e.address}_${e.port}`);
const owner = (ctx: StepContext) => `${ctx.releaseId}/${ctx.arch}`;

export function endpointsOf(builder: StaticBuilder): SshEndpoint[] {
  return builder.hosts.map((h) => ({
    address: h.address,
    port: h.port ?? builder.ssh.port,
    user: h.user ?? builder.ssh.user,
    hostKey: h.hostKey ?? builder.ssh.hostKey,
  }));
}

const isHostKeyMismatch = (err: unknown) =>
  err instanceof ApplicationFailure && err.type === FailureType.HostKeyMismatch;

/** Stops what still runs for this release on one host, removes its work dir, and frees its claim there. */
async function releaseOn(builder: StaticBuilder, ctx: StepContext, host: SshEndpoint): Promise<void> {
  await withSsh(host, credentialsOf(builder), async (ssh) => {
    const dir = shellQuote(path.join(builder.workDir, ctx.releaseId, ctx.arch));
    const claim = shellQuote(claimPath(builder, { address: host.address, port: host.port, user: host.user }));
    await ssh.exec(
      [
        // Anything still running for this release (a build the workflow gave up on) goes first.
        `for f in ${dir}/*/pid; do [ -f "$f" ] || continue; p=$(cat "$f"); kill -KILL -- "-$p" 2>/dev/null || true; done`,
        `rm -rf ${dir}`,
        `rmdir ${shellQuote(path.join(builder.workDir, ctx.releaseId))} 2>/dev/null || true`,
        `if [ "$(cat ${claim}/owner 2>/dev/null)" = ${shellQuote(owner(ctx))} ]; then rm -rf ${claim}; fi`,
      ].join('\n'),
    );
  });
}

export function createStaticProvider(): BuilderProvider<StaticBuilder> {
  return {
    async check(builder) {
      const messages: string[] = [];
      let reachable = 0;
      let mismatch = false;
      for (const e of endpointsOf(builder)) {
        messages.push(`Connecting to ${e.user}@${e.address}:${e.port}…`);
        try {
          const fields: Record<string, string> = await withSsh(e, credentialsOf(builder), async (ssh) => {
            const { stdout } = await ssh.exec(
              `command -v podman >/dev/null && echo podman=1; { command -v systemd-run || command -v setsid; } >/dev/null && echo detach=1; echo "claim=$(cat ${shellQuote(claimPath(builder, e))}/owner 2>/dev/null)"`,
            );
            return { ...parseFields(stdout), key: ssh.hostKey };
          });
          reachable++;
          messages.push(
            `${e.address}: reachable, host key ${shortKey(fields.key)}${e.hostKey ? ' (pinned)' : ' (will be pinned on first use)'}` +
              `${fields.podman ? '' : '; podman is missing'}${fields.detach ? '' : '; neither systemd-run nor setsid is present'}` +
              `${fields.claim ? `; claimed by ${fields.claim}` : ''}.`,
          );
        } catch (err) {
          mismatch ||= isHostKeyMismatch(err);
          messages.push(`${e.address}: ${(err as Error).message}`);
        }
      }
      const ok = reachable > 0 && !mismatch;
      messages.push(ok ? 'Builder conditions met.' : 'No usable static host.');
      return { ok, messages } satisfies CheckResult;
    },

    async acquire(builder, ctx) {
      const problems: string[] = [];
      for (const e of endpointsOf(builder)) {
        const claim = claimPath(builder, e);
        const tmp = `${claim}.${ctx.releaseId}.${ctx.arch}.tmp`;
        let hostKey: string;
        let fields: Record<string, string>;
        try {
          ({ hostKey, fields } = await withSsh(e, credentialsOf(builder), async (ssh) => {
            const { stdout } = await ssh.exec(
              [
                `mkdir -p ${shellQuote(claimsDir(builder))} && rm -rf ${shellQuote(tmp)} && mkdir ${shellQuote(tmp)}`,
                `echo ${shellQuote(owner(ctx))} > ${shellQuote(`${tmp}/owner`)}`,
                // rename(2) onto an existing non-empty directory fails: exactly one claimant wins.
                `if mv -T ${shellQuote(tmp)} ${shellQuote(claim)} 2>/dev/null; then echo "owner=${owner(ctx)}"; else rm -rf ${shellQuote(tmp)}; echo "owner=$(cat ${shellQuote(claim)}/owner)"; fi`,
              ].join('\n'),
            );
            return { hostKey: ssh.hostKey, fields: parseFields(stdout) };
          }));
        } catch (err) {
          if (isHostKeyMismatch(err)) throw err;
          problems.push(`${e.address}: ${(err as Error).message}`);
          continue;
        }
        if (fields.owner === owner(ctx))
          return {
            provider: 'static',
            id: `${e.address}:${e.port}`,
            address: e.address,
            port: e.port,
            user: e.user,
            hostKey,
            resources: [{ kind: 'static-claim', id: claim }],
          } satisfies BuilderHost;
        problems.push(`${e.address}: in use by ${fields.owner || 'another release'}`);
      }
      // Retryable: hosts come free when other releases end; the activity's retry policy is the waiting room.
      throw new Error(`${ctx.arch}: no free static builder: ${problems.join('; ')}`);
    },

    async release(builder, ctx, host) {
      // No host: the acquire was cancelled or failed before it told the workflow which host it claimed.
      if (host.address)
        return await releaseOn(builder, ctx, {
          address: host.address,
          port: host.port,
          user: host.user,
          hostKey: host.hostKey,
        });
      for (const target of endpointsOf(builder)) {
        // An unreachable host keeps its claim until the janitor frees it; it must not hold the release's teardown.
        await releaseOn(builder, ctx, target).catch(() => undefined);
      }
    },

    async listOwned(builder) {
      const owned: OwnedResource[] = [];
      for (const e of endpointsOf(builder)) {
        const claim = claimPath(builder, e);
        const value = await withSsh(e, credentialsOf(builder), async (ssh) =>
          (await ssh.exec(`cat ${shellQuote(claim)}/owner 2>/dev/null || true`)).stdout.trim(),
        );
        const [releaseId, arch] = value.split('/');
        if (releaseId) owned.push({ kind: 'static-claim', id: `${e.address}:${e.port}`, releaseId, arch });
      }
      return owned;
    },

    async deleteOwned(builder, resource) {
      const e = endpointsOf(builder).find((x) => `${x.address}:${x.port}` === resource.id);
      if (!e || !resource.arch || !resource.releaseId) return;
      const hostKey = await learnHostKey(e, credentialsOf(builder));
      await this.release(
        builder,
        { releaseId: resource.releaseId, arch: resource.arch as StepContext['arch'] },
        {
          provider: 'static',
          id: resource.id,
          address: e.address,
          port: e.port,
          user: e.user,
          hostKey,
          resources: [],
        },
      );
    },
  };
}
