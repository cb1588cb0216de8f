// The base images a Containerfile builds FROM, with ARG defaults substituted, without stage names or `scratch`.
export function baseImages(containerfile: string): string[] {
  const args = new Map<string, string>();
  const stages = new Set<string>();
  const images: string[] = [];
  // Continuation lines are joined first, as buildah does.
  const lines = containerfile.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  const expand = (s: string) => s.replace(/\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)/g, (_, a, dflt, b) => args.get(a ?? b) ?? dflt ?? '');
  for (const raw of lines) {
    const line = raw.trim();
    const arg = /^ARG\s+(\w+)(?:=(\S*))?/i.exec(line);
    if (arg) {
      if (arg[2] !== undefined && !args.has(arg[1]!)) args.set(arg[1]!, arg[2].replace(/^["']|["']$/g, ''));
      continue;
    }
    const from = /^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (!from) continue;
    const image = expand(from[1]!);
    if (image !== 'scratch' && !stages.has(image) && !images.includes(image)) images.push(image);
    if (from[2]) stages.add(from[2]);
  }
  return images;
}
