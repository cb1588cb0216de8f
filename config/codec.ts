// Optional encryption of the payloads the worker and the CLI hand to Temporal: workflow and activity inputs and
// results, heartbeat details, memos, queries, signals and updates, failure details. AES-256-GCM under a key read
// from the file named by BOOTC_RELEASE_CODEC_KEY_FILE; the server, and anyone reading a history without the key,
// sees `binary/encrypted` payloads, and the Web UI shows them decoded through `bootc-release codec-server`.
// Search attributes are not payloads a codec sees: they stay readable (names, stages, arches, triggers).
// Neither worker/ nor client/ owns this: both use it, and the codec server serves it.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { TEMPORAL_ENV } from './temporal';

export const CODEC_KEY_FILE_ENV = TEMPORAL_ENV.codecKeyFile;
export const ENCRYPTED_ENCODING = 'binary/encrypted';
const KEY_ID = 'encryption-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface CodecKey {
  /** Derived from the key (a hash prefix): names it in payloads and errors without revealing it. */
  id: string;
  key: Buffer;
}

const text = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? []).toString('utf8');
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));

/** A codec error: the CLI and the worker print it as it is, so it never holds key material. */
export class CodecError extends Error {
  override name = 'CodecError';
}

function parseKey(line: string): Buffer | undefined {
  const value = line.trim();
  if (/^[0-9a-fA-F]{64}$/.test(value)) return Buffer.from(value, 'hex');
  if (/^[A-Za-z0-9+/]{43}=$/.test(value)) return Buffer.from(value, 'base64');
  return undefined;
}

/**
 * The keys in a key file, one per line (base64 or hex of 32 bytes: `openssl rand -base64 32`): the first encrypts,
 * every one decrypts, so a new key goes first and an old one stays below it while histories it wrote matter.
 */
export function readCodecKeys(file: string): CodecKey[] {
  let content: string;
  try {
    content = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CodecError(`${CODEC_KEY_FILE_ENV}: ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const lines = content.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
  if (lines.length === 0) throw new CodecError(`${CODEC_KEY_FILE_ENV}: ${file} holds no key; write one with \`openssl rand -base64 32 > ${file}\``);
  return lines.map((line, i) => {
    const key = parseKey(line);
    if (!key) throw new CodecError(`${CODEC_KEY_FILE_ENV}: ${file} line ${i + 1} is not a 32-byte key in base64 or hex (\`openssl rand -base64 32\`)`);
    return { id: createHash('sha256').update('bootc-release payload codec key\n').update(key).digest('hex').slice(0, 16), key };
  });
}

/** Encrypts with the first key and decrypts with any; without keys, payloads pass as they are and encrypted ones are refused with the fix. */
export class EncryptionCodec implements PayloadCodec {
  constructor(private readonly keys: CodecKey[]) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const key = this.keys[0];
    if (!key) return payloads;
    return payloads.map((payload) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key.key, iv);
      const sealed = Buffer.concat([cipher.update(temporal.api.common.v1.Payload.encode(payload).finish()), cipher.final()]);
      return {
        metadata: { encoding: bytes(ENCRYPTED_ENCODING), [KEY_ID]: bytes(key.id) },
        data: new Uint8Array(Buffer.concat([iv, sealed, cipher.getAuthTag()])),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      if (text(payload.metadata?.encoding) !== ENCRYPTED_ENCODING) return payload;
      const id = text(payload.metadata?.[KEY_ID]);
      const key = this.keys.find((k) => k.id === id);
      if (!key)
        throw new CodecError(
          this.keys.length
            ? `a payload is encrypted with codec key ${id}, which the file in ${CODEC_KEY_FILE_ENV} does not hold (it holds ${this.keys.map((k) => k.id).join(', ')})`
            : `a payload is encrypted (codec key ${id}); set ${CODEC_KEY_FILE_ENV} to the file holding that key, as the worker has it`,
        );
      const data = Buffer.from(payload.data ?? []);
      try {
        const decipher = createDecipheriv('aes-256-gcm', key.key, data.subarray(0, IV_BYTES));
        decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
        const plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
        return temporal.api.common.v1.Payload.decode(plain) as Payload;
      } catch {
        throw new CodecError(`a payload encrypted with codec key ${id} does not decrypt: it was altered, or another key was given that id`);
      }
    });
  }
}

/** The codec for a key file (none: pass-through, and encrypted payloads are refused with the fix). */
export const payloadCodec = (keyFile?: string): EncryptionCodec => new EncryptionCodec(keyFile ? readCodecKeys(keyFile) : []);

/** What the worker and the client pass to Temporal's SDK. */
export const codecDataConverter = (keyFile?: string): DataConverter => ({ payloadCodecs: [payloadCodec(keyFile)] });
