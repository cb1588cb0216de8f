// Shared by the aws-* integration tests: fake credentials for moto, a recorder of the requests the SDK sends
// (moto drops many parameters, so the tests assert what we send), and sparse test images.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, writeSync, ftruncateSync, closeSync } from 'node:fs';
import path from 'node:path';
import type { AwsClientDeps, AwsService } from '../../activities/aws/clients';

export const fakeCredentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };

export interface RecordedCall {
  service: AwsService;
  command: string;
  input: any;
  ok?: boolean;
}

/** Middleware at the initialize step: sees each command's input once per call (before SDK retries). */
export function recorder(deps: AwsClientDeps = {}) {
  const calls: RecordedCall[] = [];
  const onClient: AwsClientDeps['onClient'] = (client, service) => {
    client.middlewareStack.add(
      (next: any, context: any) => async (args: any) => {
        const call: RecordedCall = { service, command: context.commandName, input: args.input };
        calls.push(call);
        try {
          const out = await next(args);
          call.ok = true;
          return out;
        } catch (err) {
          call.ok = false;
          throw err;
        }
      },
      // Outermost, so it also sees calls that a fault-injecting middleware answers itself.
      { step: 'initialize', name: 'testRecorder', priority: 'high' },
    );
    deps.onClient?.(client, service);
  };
  return {
    calls,
    deps: { credentials: fakeCredentials, maxAttempts: 1, ...deps, onClient } satisfies AwsClientDeps,
    of: (command: string) => calls.filter((c) => c.command === command),
    clear: () => calls.splice(0),
  };
}

export const tempDir = (rigDir: string, prefix: string) => mkdtempSync(path.join(rigDir, `${prefix}-`));

/** A sparse file of `size` bytes with `extents` of random data at the given offsets. */
export function sparseImage(file: string, size: number, extents: { offset: number; length: number }[]): string {
  const fd = openSync(file, 'w');
  try {
    ftruncateSync(fd, size);
    for (const e of extents) writeSync(fd, randomBytes(e.length), 0, e.length, e.offset);
  } finally {
    closeSync(fd);
  }
  return file;
}
