// Retention at a directory target (docs/retention.md): the definition's image files, found by name
// (`<image name>.<ext>`, the release stamp in the name), and whether a process on this worker has one open. A
// process on another machine that mounts the same share cannot be seen from here.
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ImageType } from '../../config/schema';
import type { PublishedImage } from '../types';
import { parseImageName } from '../retention/names';

/** File extension → image type, the reverse of what publish writes (raw stands for ami too). */
const TYPES: [string, ImageType][] = [
  ['tar.gz', 'gce'],
  ['qcow2', 'qcow2'],
  ['raw', 'raw'],
  ['vmdk', 'vmdk'],
  ['vhd', 'vhd'],
  ['iso', 'iso'],
];

export async function listImageFiles(dir: string, targetName: string, definition: string): Promise<PublishedImage[]> {
  const found: PublishedImage[] = [];
  for (const entry of (await readdir(dir).catch(() => [] as string[])).sort()) {
    const known = TYPES.find(([ext]) => entry.endsWith(`.${ext}`));
    if (!known) continue; // sidecars (.sha256), partial copies, other files
    const imageName = entry.slice(0, -(known[0].length + 1));
    const parsed = parseImageName(definition, imageName);
    if (!parsed) continue;
    const file = path.resolve(dir, entry);
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) continue;
    const recorded = (await readFile(`${file}.sha256`, 'utf8').catch(() => '')).split(/\s+/)[0] ?? '';
    found.push({
      arch: parsed.arch,
      target: targetName,
      kind: 'directory',
      imageId: file,
      name: entry,
      type: known[1],
      size: st.size,
      sha256: recorded,
      imageName,
      createdAt: st.mtime.toISOString(),
    });
  }
  return found;
}

/** A process on this worker that holds the file open (from /proc/<pid>/fd), in a sentence. */
export async function fileUser(file: string): Promise<string | undefined> {
  for (const pid of (await readdir('/proc').catch(() => [] as string[])).filter((p) => /^\d+$/.test(p))) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) !== file) continue;
      const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim();
      return `process ${pid} (${comm}) on this worker has it open`;
    }
  }
  return undefined;
}
