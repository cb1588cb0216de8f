// Shared by the libvirt-*.test.ts files: small sparse disk images with known data regions, and a child worker
// process that can be SIGKILLed in the middle of a publish.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const MiB = 1024 * 1024;

/** A sparse raw disk of `size` bytes with random data at each [offset, length]. */
export function sparseRaw(file: string, size: number, regions: [number, number][]): string {
  writeFileSync(file, '');
  const fd = openSync(file, 'r+');
  try {
    for (const [offset, length] of regions) writeSync(fd, randomBytes(length), 0, length, offset);
  } finally {
    closeSync(fd);
  }
  truncateSync(file, size);
  return file;
}

export const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/**
 * Runs `body` (TypeScript, with `env` a MockActivityEnvironment and `args` the JSON given) in a separate tsx process
 * that prints every heartbeat as a JSON line. `killWhen` sees each heartbeat; when it returns true the process is
 * SIGKILLed at once, as a worker dying mid-activity would be. Resolves with the heartbeats seen and whether it
 * was killed (false: it finished first).
 */
export async function runKillableChild(
  dir: string,
  imports: string,
  body: string,
  args: unknown,
  killWhen: (beat: any) => boolean,
): Promise<{ beats: any[]; killed: boolean; exitCode: number | null; stderr: string }> {
  const script = path.join(dir, `child-${randomBytes(3).toString('hex')}.ts`);
  writeFileSync(
    script,
    // Absolute import: the script lives outside the repository, where node_modules cannot be found.
    `import { MockActivityEnvironment } from '${require.resolve('@temporalio/testing')}';\n${imports}\n` +
      `const args = JSON.parse(process.env.CHILD_ARGS!);\n` +
      `const env = new MockActivityEnvironment();\n` +
      `env.on('heartbeat', (d: unknown) => process.stdout.write(JSON.stringify(d) + '\\n'));\n` +
      `(async () => { ${body} })().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });\n`,
  );
  const root = path.resolve(__dirname, '../..');
  const child = spawn(path.join(root, 'node_modules/.bin/tsx'), [script], {
    cwd: root,
    env: { ...process.env, CHILD_ARGS: JSON.stringify(args) },
    stdio: ['ignore', 'pipe', 'pipe'],
    // tsx runs the script in a child node process: kill the whole group, or the upload carries on orphaned.
    detached: true,
  });
  const beats: any[] = [];
  let killed = false;
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    if (killed) return;
    const beat = JSON.parse(line);
    beats.push(beat);
    if (killWhen(beat)) {
      killed = true;
      process.kill(-child.pid!, 'SIGKILL');
    }
  });
  const exitCode = await new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { beats, killed, exitCode, stderr };
}
