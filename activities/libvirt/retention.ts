// Retention at a libvirt target (docs/retention.md): the definition's volumes in the pool of one hypervisor, found
// by name (a volume holds no release id; its name holds the release stamp), and the domains whose disks are one of
// them. One SSH round trip each: on a hypervisor every exec costs a login shell.
import type { Arch } from '../../config/schema';
import type { PublishedImage } from '../types';
import { parseImageName } from '../retention/names';
import { firstLine, type HypervisorRunner } from './virsh';

const LIST_VOLUMES = [
  'virsh -q -c "$1" pool-refresh "$2" >/dev/null 2>&1',
  'virsh -q -c "$1" vol-list "$2" | awk \'{print $1}\' | while IFS= read -r v; do',
  '  case "$v" in "$3"*) printf "=== %s\\n" "$v"; virsh -q -c "$1" vol-dumpxml --pool "$2" "$v" ;; esac',
  'done',
].join('\n');

const LIST_DOMAIN_DISKS = [
  'virsh -q -c "$1" list --all --name | while IFS= read -r d; do',
  '  [ -n "$d" ] || continue',
  '  printf "=== %s\\n" "$d"; virsh -q -c "$1" domstate "$d" | head -n 1; virsh -q -c "$1" dumpxml "$d" | grep "<source "',
  'done',
].join('\n');

/** `=== name` headed sections of a script's output. */
function sections(stdout: string): { head: string; lines: string[] }[] {
  const out: { head: string; lines: string[] }[] = [];
  for (const line of stdout.split('\n')) {
    if (line.startsWith('=== ')) out.push({ head: line.slice(4), lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out;
}

const tag = (xml: string, name: string) => new RegExp(`<${name}[^>]*>([^<]*)</${name}>`).exec(xml)?.[1]?.trim();

/** The definition's volumes on one host, with capacity, format, path and (file pools) modification time. */
export async function listVolumes(runner: HypervisorRunner, pool: string, definition: string, targetName: string): Promise<PublishedImage[]> {
  const res = await runner.run(['sh', '-c', LIST_VOLUMES, 'sh', runner.uri, pool, `${definition}-`], { allowFailure: true });
  if (res.code !== 0) throw new Error(`${runner.host}: listing volumes of pool ${pool} failed: ${firstLine(res.stderr)}`);
  const found: PublishedImage[] = [];
  for (const { head: name, lines } of sections(res.stdout)) {
    const parsed = parseImageName(definition, name);
    if (!parsed) continue;
    const xml = lines.join('\n');
    const mtime = Number(tag(xml, 'mtime'));
    found.push({
      arch: parsed.arch as Arch,
      target: targetName,
      kind: 'libvirt',
      region: runner.host,
      imageId: `${runner.host}:${pool}/${name}`,
      name,
      type: /<format type=['"]qcow2['"]/.test(xml) ? 'qcow2' : 'raw',
      size: Number(tag(xml, 'capacity')) || 0,
      sha256: '',
      imageName: name,
      ...(mtime ? { createdAt: new Date(mtime * 1000).toISOString() } : {}),
    });
  }
  return found;
}

/**
 * The domains (running or only defined: a defined one boots from it on its next start) whose disk is the volume,
 * referenced by pool and name or by its path. Undefined when none is.
 */
export async function volumeUser(runner: HypervisorRunner, pool: string, name: string): Promise<string | undefined> {
  const pathRes = await runner.virsh(['vol-path', '--pool', pool, name], { allowFailure: true });
  const volPath = pathRes.code === 0 ? pathRes.stdout.trim() : undefined;
  const res = await runner.run(['sh', '-c', LIST_DOMAIN_DISKS, 'sh', runner.uri], { allowFailure: true });
  if (res.code !== 0) throw new Error(`${runner.host}: listing domains failed: ${firstLine(res.stderr)}`);
  const attr = (line: string, a: string) => new RegExp(`\\b${a}=['"]([^'"]*)['"]`).exec(line)?.[1];
  const users = sections(res.stdout)
    .filter(({ lines }) =>
      lines.slice(1).some((l) => (attr(l, 'pool') === pool && attr(l, 'volume') === name) || (!!volPath && (attr(l, 'file') === volPath || attr(l, 'dev') === volPath))),
    )
    .map(({ head, lines }) => `domain ${head} (${lines[0]?.trim() || 'unknown state'}) on ${runner.host}`);
  if (!users.length) return undefined;
  return users.length > 1 ? `${users[0]} and ${users.length - 1} more` : users[0];
}
