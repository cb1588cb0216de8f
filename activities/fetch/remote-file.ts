// What the worker needs to know about a big file on a builder before fetching it: its size, where its data is
// (SEEK_DATA/SEEK_HOLE, so the holes of a 10 GiB raw image never travel), and the commands that stream given byte
// ranges of it and hash it there. Builders are Fedora/CentOS bootc hosts: python3 is preferred; without it,
// `filefrag -v` (e2fsprogs) maps the extents and dd/sha256sum do the rest.
import { shellQuote } from '../ssh/connection';

/** A run of data bytes in the remote file: [offset, offset + length). */
export type Extent = [offset: number, length: number];

export type RemoteHelper = 'python3' | 'shell';

export interface RemoteFileInfo {
  size: number;
  /** Nanoseconds since the epoch as the builder reports them (string: beyond 2^53). */
  mtime: string;
  /** Data extents in file order; one extent [0, size) when the holes could not be mapped. */
  extents: Extent[];
  /** False when the extent map is unknown and everything was reported as data. */
  holesKnown: boolean;
  helper: RemoteHelper;
}

// Kept to Python 3.6 (CentOS Stream 8). sendfile() hands file pages to the ssh pipe without a copy in userspace;
// holes are hashed from a zero buffer instead of being read. Ranges are sent as their lines arrive: the worker asks
// for more while it receives and ends the input when it has nothing left to ask for.
const PY = String.raw`
import errno, hashlib, os, sys
mode, path = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDONLY)
st = os.fstat(fd)
size = st.st_size
def extents():
    out, off = [], 0
    try:
        while off < size:
            try:
                d = os.lseek(fd, off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            h = min(os.lseek(fd, d, os.SEEK_HOLE), size)
            out.append((d, h - d))
            off = h
    except (OSError, AttributeError):
        return [(0, size)] if size else [], 0
    return out, 1
if mode == 'session':
    ex, known = extents()
    w = sys.stdout.write
    w('H %d %d %d\n' % (size, st.st_mtime_ns, known))
    for d, n in ex:
        w('%d %d\n' % (d, n))
    w('E\n')
    sys.stdout.flush()
if mode in ('session', 'send'):
    out = sys.stdout.fileno()
    def send(off, n):
        while n > 0:
            k = os.sendfile(out, fd, off, min(n, 1 << 24))
            if k == 0:
                sys.stderr.write('%s shrank below %d bytes\n' % (path, off))
                sys.exit(3)
            off += k
            n -= k
    # A head start: the first bytes of data, sent right after the header without waiting for their ranges.
    first = int(sys.argv[3]) if mode == 'session' and len(sys.argv) > 3 else 0
    for d, n in (ex if first else []):
        if first <= 0:
            break
        send(d, min(n, first))
        first -= min(n, first)
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        off, n = map(int, line.split())
        send(off, n)
elif mode == 'sha256':
    ex, known = extents()
    h = hashlib.sha256()
    s = hashlib.sha256(('bootc-release sparse-sha256 v1\n%d\n' % size + ''.join('%d %d\n' % e for e in ex) + '\n').encode())
    zeros = memoryview(bytes(1 << 20))
    buf = memoryview(bytearray(1 << 20))
    pos = 0
    for d, n in ex + [(size, 0)]:
        while pos < d:
            k = min(d - pos, len(zeros))
            h.update(zeros[:k])
            pos += k
        end = d + n
        os.lseek(fd, pos, os.SEEK_SET)
        while pos < end:
            k = os.readv(fd, [buf[:min(end - pos, len(buf))]])
            if k == 0:
                sys.stderr.write('%s shrank below %d bytes\n' % (path, pos))
                sys.exit(3)
            h.update(buf[:k])
            s.update(buf[:k])
            pos += k
    print('%s sparse-sha256=%s' % (h.hexdigest(), s.hexdigest()))
`;

/**
 * Runs the helper with the system interpreter when there is one (absolute paths skip PATH shims; -S skips site
 * imports: the helper needs only the standard library), else `orElse`. platform-python is RHEL/CentOS 8's.
 */
function python(
  mode: string,
  path: string,
  orElse = "echo 'python3 is not installed' >&2; exit 127",
  args: string[] = [],
): string {
  const run = (bin: string) =>
    [bin, '-E', '-S', '-c', shellQuote(PY), mode, shellQuote(path), ...args.map(shellQuote)].join(' ');
  return (
    `for p in /usr/bin/python3 /usr/libexec/platform-python; do if [ -x "$p" ]; then exec ${run('"$p"')}; fi; done; ` +
    `if command -v python3 >/dev/null 2>&1; then exec ${run('python3')}; fi; ${orElse}`
  );
}

const ddLoop = (q: string) =>
  `while read -r off len; do dd if=${q} iflag=skip_bytes,count_bytes,fullblock bs=1M skip="$off" count="$len" status=none || exit 3; done`;

/**
 * One exec that describes the file and then sends the ranges it is asked for: the header ("H size mtime known",
 * extent lines, "E"; or, without python3, "S size mtime", filefrag's map, "E") comes first, the data only after the
 * ranges arrive on stdin. A single round trip before data flows: every exec pays for a login shell on the builder.
 * With `headStart`, python3 sends the first that many bytes of data (the extents in file order) right after the
 * header, before any range is asked for: the round trip of the first request is not waited for. The shell helper
 * sends nothing unasked.
 */
export function sessionCommand(path: string, helper: RemoteHelper | 'auto', headStart = 0): string {
  const q = shellQuote(path);
  // stat first so a missing file is a clear error; filefrag's exit code is ignored (not every fs has FIEMAP).
  const shell = `stat -L -c 'S %s %.9Y' ${q} || exit 2; filefrag -v ${q} 2>/dev/null; echo E; ${ddLoop(q)}`;
  if (helper === 'shell') return shell;
  const args = headStart > 0 ? [String(headStart)] : [];
  return python('session', path, helper === 'python3' ? undefined : shell, args);
}

/** Where the header of a session's output ends, or -1 while it is incomplete. */
export function headerEnd(text: string): number {
  const at = text.startsWith('E\n') ? 0 : text.indexOf('\nE\n');
  return at < 0 ? -1 : at + (at === 0 ? 2 : 3);
}

export function parseHeader(header: string): RemoteFileInfo {
  const [head, ...lines] = header.split('\n');
  const fields = head.trim().split(' ');
  const body = lines.filter((l) => l.trim() && l.trim() !== 'E');
  if (fields[0] === 'H') {
    return {
      size: Number(fields[1]),
      mtime: fields[2],
      extents: parseExtents(body),
      holesKnown: fields[3] === '1',
      helper: 'python3',
    };
  }
  if (fields[0] !== 'S') throw new Error(`unexpected reply from the builder: ${head.slice(0, 200)}`);
  const size = Number(fields[1]);
  const fromMap = parseFilefrag(body.join('\n'), size);
  return {
    size,
    mtime: fields[2].replace('.', ''),
    extents: fromMap ?? (size > 0 ? [[0, size]] : []),
    holesKnown: fromMap !== undefined,
    helper: 'shell',
  };
}

function parseExtents(lines: string[]): Extent[] {
  return lines.filter((l) => l.trim()).map((l) => l.split(' ').map(Number) as Extent);
}

/**
 * Extents from `filefrag -v` (FIEMAP): logical block ranges, merged when adjacent. Unwritten (preallocated)
 * extents read as zeros and stay holes. Undefined when the output is not a map we understand.
 */
export function parseFilefrag(text: string, size: number): Extent[] | undefined {
  const bs = /blocks? of (\d+) bytes/.exec(text);
  if (!bs) return undefined;
  const block = Number(bs[1]);
  const out: Extent[] = [];
  for (const m of text.matchAll(/^\s*\d+:\s*(\d+)\.\.\s*(\d+):.*$/gm)) {
    if (/\bunwritten\b/.test(m[0])) continue;
    const start = Number(m[1]) * block;
    const end = Math.min((Number(m[2]) + 1) * block, size);
    if (end <= start) continue;
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === start) last[1] += end - start;
    else out.push([start, end - start]);
  }
  return out;
}

export type Compression = 'none' | 'gzip' | 'zstd';

/**
 * A command that writes the given ranges of the file to stdout, back to back, in the order they are written to its
 * stdin as "offset length" lines, each as soon as its line arrives. A file that shrank ends the stream early, which the reader sees as a short stream.
 */
export function sendCommand(path: string, helper: RemoteHelper, compression: Compression): string {
  const send = helper === 'python3' ? python('send', path) : ddLoop(shellQuote(path));
  if (compression === 'gzip') return `{ ${send}; } | gzip -1 -c`;
  if (compression === 'zstd') return `{ ${send}; } | zstd -1 -q -c`;
  return send;
}

/**
 * The digests the builder vouches for. `sha256` is the whole apparent file's (holes read as zeros).
 * `sparseSha256`, from the python helper only, covers the file's size, its data-extent map and the data bytes in file
 * order (see sparseHeader): it proves the same content as sha256 when the fetched file has the same map and holes,
 * and a worker checks it by hashing the data only, not gigabytes of holes.
 */
export interface RemoteDigests {
  sha256: string;
  sparseSha256?: string;
}

/**
 * What sparse-sha256 hashes before the data: a version line, the apparent size, one "offset length" line per data
 * extent (as SEEK_DATA/SEEK_HOLE report them) and an empty line. The python helper builds the same bytes.
 */
export function sparseHeader(size: number, extents: Extent[]): Buffer {
  return Buffer.from(
    `bootc-release sparse-sha256 v1\n${size}\n${extents.map(([o, n]) => `${o} ${n}\n`).join('')}\n`,
    'latin1',
  );
}

/**
 * Prints "<sha256>[ sparse-sha256=<hex>]": python3 reads only the data extents (holes are hashed as zeros for the
 * whole-file digest) and computes both digests in that one pass; without python3, sha256sum gives the first.
 */
export function sha256Command(path: string, helper: RemoteHelper | 'auto'): string {
  const coreutils = `sha256sum ${shellQuote(path)} | cut -c1-64`;
  if (helper === 'shell') return coreutils;
  return helper === 'python3' ? python('sha256', path) : python('sha256', path, coreutils);
}

/** The same, for a build step that has the file to itself: OpenSSL's SHA-256 when python3 is missing (faster). */
export function buildDigestCommand(path: string): string {
  const q = shellQuote(path);
  return python(
    'sha256',
    path,
    `if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r ${q} | cut -c1-64; else sha256sum ${q} | cut -c1-64; fi`,
  );
}

/** Parses sha256Command's output (also an older cache line holding only the sha256). */
export function parseDigests(text: string): RemoteDigests | undefined {
  const m = /^\s*([0-9a-fA-F]{64})(?:\s+sparse-sha256=([0-9a-fA-F]{64}))?\s*$/.exec(text);
  if (!m) return undefined;
  return { sha256: m[1].toLowerCase(), ...(m[2] ? { sparseSha256: m[2].toLowerCase() } : {}) };
}
