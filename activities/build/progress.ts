// Reading bootc-image-builder's progress from its log on the builder. Over a non-TTY bib prints osbuild's LogMonitor
// text: `Pipeline <name>: <id>` when a pipeline begins, `<stage>: <id> {` when a stage begins, `⏱  Duration: Ns`
// when it ends. The total number of stages is in the manifest bib writes to /output before it starts osbuild.
// The builder does the grepping, so each poll moves a few hundred bytes, never the log.
import { shellQuote } from '../ssh/connection';

const STAGE = String.raw`^org\.osbuild\.[A-Za-z0-9._-]+: [0-9a-f]{64} `;
const PIPELINE = String.raw`^Pipeline [A-Za-z0-9._-]+: [0-9a-f]{64}`;

/** Prints `stages=N`, `last=<line>` and, once bib wrote it, `manifest=<path>` and `manifestBytes=N`. */
export function progressScript(logPath: string, outputDir: string): string {
  const log = shellQuote(logPath);
  const out = shellQuote(outputDir);
  return [
    `echo "stages=$(grep -cE '${STAGE}' ${log} 2>/dev/null)"`,
    `echo "last=$(grep -E '${STAGE}|${PIPELINE}|^error' ${log} 2>/dev/null | tail -n 1 | cut -c1-200)"`,
    `for m in ${out}/manifest-*.json; do [ -f "$m" ] && { echo "manifest=$m"; echo "manifestBytes=$(stat -c %s "$m")"; }; break; done`,
  ].join('\n');
}

/** Total stages in an osbuild manifest (v2: pipelines[].stages[]). */
export function countManifestStages(json: string): number | undefined {
  try {
    const manifest = JSON.parse(json) as { pipelines?: { stages?: unknown[] }[] };
    if (!Array.isArray(manifest.pipelines)) return undefined;
    const total = manifest.pipelines.reduce((n, p) => n + (Array.isArray(p.stages) ? p.stages.length : 0), 0);
    return total || undefined;
  } catch {
    return undefined;
  }
}

/** A stage header reads better without its 64-hex id: "org.osbuild.selinux", "Pipeline image". */
export function progressMessage(last: string | undefined): string {
  if (!last) return 'starting bootc-image-builder';
  return last
    .replace(/: [0-9a-f]{64}.*$/, '')
    .trim()
    .slice(0, 160);
}

const NO_SPACE = /no space left on device|ENOSPC|disk quota exceeded/i;

/** The log line that says the build ran out of space, if one does. */
export function noSpaceLine(logTail: string): string | undefined {
  return logTail
    .split('\n')
    .find((l) => NO_SPACE.test(l))
    ?.trim()
    .slice(0, 300);
}

export const lastLines = (text: string, n: number): string =>
  text
    .trim()
    .split('\n')
    .filter((l) => l.trim())
    .slice(-n)
    .join(' | ')
    .slice(0, 1500);
