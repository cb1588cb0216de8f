// The pure parts of the approval gate: the workflow's own SHA-512 and Ed25519 (checked against node:crypto), the
// SSHSIG check on signatures made by the real ssh-keygen, the schema of approval keys, and the worker setting.
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { signDecision } from '../../client/approval-signing';
import { differingPaths } from '../../activities/plan/known-definition';
import { planFromDefinition, resolvePlan } from '../../activities/plan/resolve-plan';
import { ReleaseDefinition } from '../../config/schema';
import { workerSettings } from '../../worker/settings';
import { approvalText, publicKeyBlob, signatureProblem } from '../../workflows/approval-signature';
import { ed25519Verify, sha512 } from '../../workflows/ed25519';

const dir = mkdtempSync(path.join(os.tmpdir(), 'approval-sig-'));
function sshKey(name: string) {
  const file = path.join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file]);
  return { privateKey: file, publicKey: readFileSync(`${file}.pub`, 'utf8').trim() };
}
const fields = { releaseId: 'copr-20261129-120000', decision: 'approve' as const, by: 'copr-admin', images: ['ami-1', 'ami-2'], signedAt: '2026-11-29T12:00:00.000Z' };

describe('the workflow-side crypto', () => {
  it('hashes like node:crypto across block boundaries', () => {
    for (const n of [0, 1, 111, 112, 127, 128, 129, 255, 256, 1000])
      expect(Buffer.from(sha512(randomBytes(n))).toString('hex')).toHaveLength(128);
    for (const n of [0, 111, 112, 128, 1000]) {
      const data = randomBytes(n);
      expect(Buffer.from(sha512(data)).toString('hex')).toBe(createHash('sha512').update(data).digest('hex'));
    }
  });

  it('verifies what node:crypto signs, and nothing altered', () => {
    for (let i = 0; i < 8; i++) {
      const { publicKey, privateKey } = generateKeyPairSync('ed25519');
      const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(12));
      const message = new Uint8Array(randomBytes(i * 13));
      const signature = new Uint8Array(sign(null, message, privateKey));
      expect(ed25519Verify(raw, message, signature)).toBe(true);
      const flipped = signature.slice();
      flipped[(i * 9) % 64]! ^= 1;
      expect(ed25519Verify(raw, message, flipped)).toBe(false);
      expect(ed25519Verify(raw, Uint8Array.from([...message, 0]), signature)).toBe(false);
    }
  });
});

describe('SSH signatures of decisions', () => {
  const admin = sshKey('admin');
  const other = sshKey('other');

  it('accepts the real ssh-keygen signature of the decision text by a listed key', async () => {
    const signature = await signDecision(admin.privateKey, fields);
    expect(signature).toMatch(/^-----BEGIN SSH SIGNATURE-----/);
    expect(signatureProblem(signature, approvalText(fields), [other.publicKey, admin.publicKey])).toBeUndefined();
  });

  it('refuses an unlisted key, another text, another namespace and garbage, without naming the keys', async () => {
    const signature = await signDecision(admin.privateKey, fields);
    const problem = signatureProblem(signature, approvalText(fields), [other.publicKey]);
    expect(problem).toMatch(/not listed for this approver/);
    expect(problem).not.toContain(other.publicKey.split(' ')[1]);
    expect(signatureProblem(signature, approvalText({ ...fields, images: ['ami-1'] }), [admin.publicKey])).toMatch(/does not match/);
    expect(signatureProblem(signature, approvalText({ ...fields, releaseId: 'other' }), [admin.publicKey])).toMatch(/does not match/);
    const elsewhere = execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-f', admin.privateKey, '-n', 'file'], { input: approvalText(fields) }).toString();
    expect(signatureProblem(elsewhere, approvalText(fields), [admin.publicKey])).toMatch(/namespace "file"/);
    expect(signatureProblem('approved!', approvalText(fields), [admin.publicKey])).toMatch(/not an SSH signature/);
  });

  it('reads OpenSSH public key lines', () => {
    expect(publicKeyBlob(admin.publicKey)).toHaveLength(51);
    expect(publicKeyBlob('ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ')).toBeUndefined();
  });
});

describe('approval keys in a definition', () => {
  const def = (approval: object) => ({
    name: 'd',
    source: { image: 'quay.io/x/y:1' },
    architectures: { x86_64: { builder: { provider: 'static', hosts: [{ address: '127.0.0.1' }] }, types: ['qcow2'], targets: ['local'] } },
    targets: { local: { kind: 'directory', path: '/var/tmp/images' } },
    approval,
  });

  it('defaults to signed decisions only, and checks the keys and whose they are', () => {
    const ok = ReleaseDefinition.parse(def({ approvers: ['a'] }));
    expect(ok.approval).toMatchObject({ allowUnsigned: false, keys: {} });
    const bad = ReleaseDefinition.safeParse(def({ approvers: ['a'], keys: { b: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI' + 'A'.repeat(43)], a: ['ssh-rsa AAAA'] } }));
    expect(bad.success).toBe(false);
    const paths = bad.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(paths).toContain('approval.keys.a.0: must be an ssh-ed25519 public key line');
    expect(paths).toContain('approval.keys.b: "b" is not in approval.approvers');
  });
});

describe('the worker setting for inline definitions', () => {
  it('is off unless set to true, and refuses a value it cannot read', () => {
    expect(workerSettings({}).allowInlineDefinitions).toBe(false);
    expect(workerSettings({ BOOTC_RELEASE_ALLOW_INLINE_DEFINITIONS: 'true' }).allowInlineDefinitions).toBe(true);
    expect(() => workerSettings({ BOOTC_RELEASE_ALLOW_INLINE_DEFINITIONS: 'yes' })).toThrow(/BOOTC_RELEASE_ALLOW_INLINE_DEFINITIONS: must be true or false/);
  });

  it('compares definitions by value, not by key order', () => {
    expect(differingPaths({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1, d: undefined })).toEqual([]);
    expect(differingPaths({ a: 1, b: { c: [1, 2] } }, { a: 1, b: { c: [1, 3] }, e: 'x' })).toEqual(['b.c.1', 'e']);
  });

  it('knows the demo\'s definition when npm run demo sends it whole, and refuses it changed', async () => {
    const examples = path.resolve(__dirname, '../../examples');
    const demo = parseYaml(readFileSync(path.join(examples, 'demo.yaml'), 'utf8'));
    const startedAt = new Date();
    const plan = planFromDefinition(demo, { releaseId: 'demo-1', startedAt, reason: 'npm run demo' });
    const input = { input: { plan }, releaseId: 'demo-1', startedAt: startedAt.toISOString() };
    expect((await resolvePlan({ definitionsDir: examples }, input)).definition.name).toBe('demo');
    const changed = { ...plan, definition: { ...plan.definition, approval: { ...plan.definition.approval, approvers: ['mallory'] } } };
    await expect(resolvePlan({ definitionsDir: examples }, { ...input, input: { plan: changed } })).rejects.toMatchObject({
      type: 'ConfigError',
      nonRetryable: true,
      message: expect.stringMatching(/release definition "demo" was sent whole .* its "demo" differs at approval\.approvers\.0/),
    });
    const unknownDir = mkdtempSync(path.join(dir, 'definitions-'));
    writeFileSync(path.join(unknownDir, 'other.yaml'), 'name: other\n');
    await expect(resolvePlan({ definitionsDir: unknownDir }, input)).rejects.toThrow(/it has none named "demo"/);
    expect((await resolvePlan({ definitionsDir: unknownDir, allowInlineDefinitions: true }, input)).definition.name).toBe('demo');
  });
});
