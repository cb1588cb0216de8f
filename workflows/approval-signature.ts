// Signed approvals: what an approver signs with `ssh-keygen -Y sign -n bootc-release-approval`, and the check the
// workflow runs on it. Pure code (no Node built-ins): the workflow sandbox runs it, and the CLI builds the same text.
//
// The format is OpenSSH's SSHSIG (PROTOCOL.sshsig): the armored blob holds the signer's public key, the namespace,
// the hash algorithm and an Ed25519 signature over "SSHSIG" ‖ string(namespace) ‖ string(reserved) ‖
// string(hash algorithm) ‖ string(hash of the message).
import { concat, ed25519Verify, sha512 } from './ed25519';

export const APPROVAL_NAMESPACE = 'bootc-release-approval';
/** How old a signature may be when the workflow sees it, and how far in the future (clock skew). */
export const SIGNATURE_MAX_AGE_MS = 15 * 60_000;
export const SIGNATURE_MAX_SKEW_MS = 5 * 60_000;

export interface SignedFields {
  releaseId: string;
  decision: 'approve' | 'reject';
  by: string;
  /** The image ids chosen (approve); empty for a rejection. */
  images: string[];
  /** The approval's comment or the rejection's reason. */
  note?: string;
  /** ISO time of signing. */
  signedAt: string;
  /** The channel the approver chose (approve); absent for the definition's default, and then not in the text. */
  channel?: string;
}

/** The exact text that is signed: JSON with a fixed key order, so both sides produce the same bytes. */
export function approvalText(f: SignedFields): string {
  return `${JSON.stringify({
    'bootc-release': 'approval/v1',
    release: f.releaseId,
    decision: f.decision,
    by: f.by,
    images: f.images,
    note: f.note ?? '',
    signedAt: f.signedAt,
    ...(f.channel ? { channel: f.channel } : {}),
  })}\n`;
}

/** What an approver signs to act on a channel (docs/channels.md). */
export interface ChannelSignedFields {
  action: 'promote' | 'rollback' | 'mark-tested';
  definition: string;
  /** The channel acted on (for a promote: the one receiving the images). */
  channel: string;
  /** promote: the channel the images come from. */
  from?: string;
  /** rollback: the release asked for (`--to`); mark-tested: the release marked; empty when not named. */
  release?: string;
  by: string;
  note?: string;
  signedAt: string;
}

/**
 * The signed text of a channel action. It names the action, the definition and both channels, so a signature made
 * for one action (or one release's approval) cannot be replayed as another.
 */
export function channelActionText(f: ChannelSignedFields): string {
  return `${JSON.stringify({
    'bootc-release': 'channel/v1',
    action: f.action,
    definition: f.definition,
    channel: f.channel,
    from: f.from ?? '',
    release: f.release ?? '',
    by: f.by,
    note: f.note ?? '',
    signedAt: f.signedAt,
  })}\n`;
}

/**
 * Why a request's signature does not count now, or undefined when it does. Unsigned requests count only where the
 * definition allows them (`unsigned` says how to sign instead). `now` is the workflow's clock.
 */
export function signedRequestProblem(
  m: { signature?: unknown; signedAt?: unknown },
  o: { text: (signedAt: string) => string; keys: string[]; allowUnsigned: boolean; now: number; unsigned: string; what: string },
): string | undefined {
  if (m.signature === undefined || m.signature === null || m.signature === '') return o.allowUnsigned ? undefined : o.unsigned;
  if (typeof m.signature !== 'string') return 'signature: must be the text of an SSH signature';
  if (typeof m.signedAt !== 'string' || Number.isNaN(Date.parse(m.signedAt)))
    return 'signedAt: required with a signature (the ISO time it was signed)';
  const signedAt = Date.parse(m.signedAt);
  if (signedAt < o.now - SIGNATURE_MAX_AGE_MS) return `signedAt: the signature is older than ${SIGNATURE_MAX_AGE_MS / 60_000} minutes; sign again`;
  if (signedAt > o.now + SIGNATURE_MAX_SKEW_MS) return `signedAt: ${m.signedAt} is ahead of the workflow's clock; check the signer's clock`;
  return signatureProblem(m.signature, o.text(m.signedAt), o.keys, o.what);
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function base64Decode(text: string): Uint8Array | undefined {
  const clean = text.replace(/\s+/g, '').replace(/=+$/, '');
  if (!/^[A-Za-z0-9+/]*$/.test(clean) || clean.length % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const ch of clean) {
    value = (value << 6) | B64.indexOf(ch);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (value >> bits) & 0xff;
    }
  }
  return out;
}

function utf8(text: string): Uint8Array {
  const bytes: number[] = [];
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c < 0x80) bytes.push(c);
    else if (c < 0x800) bytes.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) bytes.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else bytes.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return Uint8Array.from(bytes);
}

/** SSH wire format: a uint32 length, then the bytes. */
const sshString = (bytes: Uint8Array) => concat(Uint8Array.of(bytes.length >>> 24, (bytes.length >> 16) & 255, (bytes.length >> 8) & 255, bytes.length & 255), bytes);

class Reader {
  private at = 0;
  constructor(private readonly bytes: Uint8Array) {}
  raw(n: number): Uint8Array {
    if (this.at + n > this.bytes.length) throw new Error('truncated');
    const out = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  uint32(): number {
    const b = this.raw(4);
    return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  }
  string(): Uint8Array {
    return this.raw(this.uint32());
  }
  text(): string {
    return String.fromCharCode(...this.string());
  }
  get done(): boolean {
    return this.at === this.bytes.length;
  }
}

const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);

/** The key blob of an OpenSSH public key line (`ssh-ed25519 AAAA… comment`), or undefined. */
export function publicKeyBlob(line: string): Uint8Array | undefined {
  const [type, b64] = line.trim().split(/\s+/);
  if (type !== 'ssh-ed25519' || !b64) return undefined;
  const blob = base64Decode(b64);
  if (!blob) return undefined;
  try {
    const r = new Reader(blob);
    if (r.text() !== 'ssh-ed25519' || r.string().length !== 32 || !r.done) return undefined;
  } catch {
    return undefined;
  }
  return blob;
}

/**
 * Why `signature` is not a valid signature of `text` by one of `keys` (OpenSSH public key lines), or undefined when
 * it is. The reasons never list the keys: a refusal tells the sender what is wrong, not who may approve.
 */
export function signatureProblem(
  signature: string,
  text: string,
  keys: string[],
  what = 'this decision (release id, decision, approver, images, note and time are signed)',
): string | undefined {
  const armored = /-----BEGIN SSH SIGNATURE-----([\s\S]*?)-----END SSH SIGNATURE-----/.exec(signature);
  const blob = armored ? base64Decode(armored[1]!) : undefined;
  if (!blob) return 'signature: not an SSH signature (expected the output of ssh-keygen -Y sign)';
  let parsed: { key: Uint8Array; namespace: string; hash: string; type: string; sig: Uint8Array; reserved: Uint8Array };
  try {
    const r = new Reader(blob);
    if (String.fromCharCode(...r.raw(6)) !== 'SSHSIG' || r.uint32() !== 1) throw new Error('not SSHSIG v1');
    const key = r.string();
    const namespace = r.text();
    const reserved = r.string();
    const hash = r.text();
    const s = new Reader(r.string());
    parsed = { key, namespace, reserved, hash, type: s.text(), sig: s.string() };
  } catch {
    return 'signature: not a well-formed SSH signature';
  }
  if (parsed.namespace !== APPROVAL_NAMESPACE)
    return `signature: made for namespace "${parsed.namespace}", not "${APPROVAL_NAMESPACE}" (ssh-keygen -Y sign -n ${APPROVAL_NAMESPACE})`;
  if (parsed.type !== 'ssh-ed25519') return `signature: ${parsed.type} keys are not supported; sign with an ssh-ed25519 key`;
  if (parsed.hash !== 'sha512') return `signature: hash ${parsed.hash} is not supported; ssh-keygen's default sha512 is`;
  const listed = keys.some((k) => {
    const b = publicKeyBlob(k);
    return b !== undefined && equalBytes(b, parsed.key);
  });
  if (!listed) return 'signature: made with a key that is not listed for this approver';
  const keyBytes = new Reader(parsed.key);
  keyBytes.text();
  const signed = concat(
    utf8('SSHSIG'),
    sshString(utf8(APPROVAL_NAMESPACE)),
    sshString(parsed.reserved),
    sshString(utf8('sha512')),
    sshString(sha512(utf8(text))),
  );
  if (!ed25519Verify(keyBytes.string(), signed, parsed.sig))
    return `signature: does not match ${what}`;
  return undefined;
}
