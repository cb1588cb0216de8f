// The secret scan of every end-to-end test file. The harnesses (release-harness.ts, demo-harness.ts) register what
// a file runs (Temporal servers and task queues, worker logs, worker overrides) as it runs it; when the file ends,
// everything Temporal keeps of those workflows (every history event with its payloads decoded, memos, search
// attributes, and pending activities' heartbeat details and last failures, sampled each second while they run) and
// every line the workers logged is searched for every secret the file used, and the file fails on any find. The
// secrets are found, not listed by hand: private keys under the rig's directories, secret-named variables of the
// test's environment, the credentials handed to workers, and whatever the workflows' plans reference by name
// (`privateKeyEnv`, `apiKeyEnv`, `tokenEnv`, `credentialsEnv`, `privateKeyPath`...), resolved as the worker resolves
// them. A finding names the workflow, the place and the secret's label, never the value.
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter, type Payload, type PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

/** Shorter values would be found by chance (moto's `testing` keys): they are not secrets worth the name. */
export const MIN_SECRET_LENGTH = 8;
/** Environment variables whose value is a secret (or the path of one). */
const SECRET_NAME = /SECRET|PASSWORD|PASSWD|TOKEN|_KEY$|APIKEY/;

export interface Material {
  workflowId?: string;
  /** `history event 5 (ACTIVITY_TASK_SCHEDULED)`, `memo candidates`, `worker log line 12`... */
  place: string;
  text: string;
}

export interface Finding {
  workflowId?: string;
  place: string;
  /** The secret's label; its value is never reported. */
  secret: string;
}

export class SecretSet {
  private readonly byValue = new Map<string, string>();

  add(label: string, value: string | undefined): void {
    if (!value || value.length < MIN_SECRET_LENGTH || this.byValue.has(value)) return;
    if (/PRIVATE KEY-----/.test(value)) return this.addKeyText(label, value);
    this.byValue.set(value, label);
  }

  /**
   * A PEM or OpenSSH private key: the text and each line of its body. An OpenSSH key's first line is the same for
   * every key (format, cipher, key type), so it is left out.
   */
  addKeyText(label: string, text: string): void {
    this.byValue.set(text.trim(), label);
    const body = text.split('\n').filter((l) => l.trim() && !l.startsWith('-----'));
    body.forEach((line, i) => {
      if ((i > 0 || !text.includes('OPENSSH')) && line.trim().length >= 40) this.byValue.set(line.trim(), label);
    });
  }

  /** A file named as a secret: a private key's lines, or its whole content. Missing and large files are not secrets. */
  addFile(label: string, file: string): void {
    try {
      if (statSync(file).size > 64 * 1024) return;
      this.add(label, readFileSync(file, 'utf8').trim());
    } catch {
      /* not a readable file: a reference to something elsewhere */
    }
  }

  get size(): number {
    return this.byValue.size;
  }

  entries(): [value: string, label: string][] {
    return [...this.byValue];
  }
}

/** Every material that holds a secret, as it appears raw or escaped in JSON (a key's newlines as \n). */
export function scan(materials: Material[], secrets: SecretSet): Finding[] {
  const forms = secrets.entries().map(([value, label]) => ({ label, forms: [...new Set([value, JSON.stringify(value).slice(1, -1)])] }));
  const findings: Finding[] = [];
  for (const m of materials)
    for (const s of forms)
      if (s.forms.some((f) => m.text.includes(f))) findings.push({ workflowId: m.workflowId, place: m.place, secret: s.label });
  return findings;
}

export const describeFindings = (findings: Finding[]): string =>
  findings.map((f) => `  ${f.workflowId ? `workflow ${f.workflowId}: ` : ''}${f.place} holds the secret "${f.secret}"`).join('\n');

/** References a plan carries to secrets the worker resolves: variable names, variable prefixes, key files. */
interface References {
  env: Set<string>;
  prefixes: Set<string>;
  files: Set<string>;
}

const isPayload = (v: object): v is Payload =>
  'data' in v && 'metadata' in v && (v as Payload).data instanceof Uint8Array && typeof (v as Payload).metadata === 'object';

/**
 * A history event, pending activity or failure with every payload decoded (codecs, then the JSON converter), and
 * the references found in it noted. A payload no codec can read is an error: the scan would be blind to it.
 */
async function decoded(value: unknown, codecs: PayloadCodec[], refs: References): Promise<unknown> {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if ('low' in value && 'high' in value && 'unsigned' in value) return String(value);
  if (Array.isArray(value)) return await Promise.all(value.map((v) => decoded(v, codecs, refs)));
  if (isPayload(value)) {
    let payload = value;
    for (const codec of [...codecs].reverse()) [payload] = await codec.decode([payload]);
    const encoding = Buffer.from(payload.metadata?.encoding ?? []).toString();
    if (encoding === 'binary/encrypted') throw new Error('a payload is encrypted and the scan has no codec to read it: register the codec with the scan');
    let data: unknown;
    try {
      data = defaultPayloadConverter.fromPayload(payload);
    } catch {
      data = Buffer.from(payload.data ?? []).toString('utf8');
    }
    noteReferences(data, refs);
    return data;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = await decoded(v, codecs, refs);
  return out;
}

function noteReferences(value: unknown, refs: References): void {
  if (value === null || typeof value !== 'object') return;
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'string' && k === 'credentialsEnv') refs.prefixes.add(v);
    else if (typeof v === 'string' && /Env$/.test(k) && k !== 'passEnv') refs.env.add(v);
    else if (typeof v === 'string' && k === 'privateKeyPath') refs.files.add(v);
    else noteReferences(v, refs);
  }
}

const eventName = (type: number | null | undefined) => (temporal.api.enums.v1.EventType[type ?? 0] ?? String(type)).replace(/^EVENT_TYPE_/, '');

interface Source {
  address: string;
  /** Visibility query of the workflows to scan ('' for every workflow on the server). */
  query: string;
  /** Materials per workflow run, kept from the last time the server answered. */
  kept: Map<string, Material[]>;
  /** Runs read after they closed: their history is final. */
  final: Set<string>;
  /** The server answered a snapshot once: if it is gone at the end (a test stopped it), what was kept stands. */
  read: boolean;
  pending: Map<string, Material>;
  client?: Promise<Client>;
}

/** What one test file exposes to the scan, and the scan itself. */
export class FileScan {
  readonly secrets = new SecretSet();
  readonly codecs: PayloadCodec[] = [];
  private readonly sources: Source[] = [];
  private readonly logs: (() => Material[])[] = [];
  private readonly envs: Record<string, string | undefined>[] = [];
  private readonly keyRoots = new Set<string>();
  private readonly logFiles = new Set<string>();
  private readonly refs: References = { env: new Set(), prefixes: new Set(), files: new Set() };
  private timer?: NodeJS.Timeout;
  private sampling = false;

  get active(): boolean {
    return this.sources.length > 0 || this.logs.length > 0;
  }

  /** The workflows on a task queue (their children share it): scanned when the file ends, sampled while they run. */
  watchQueue(address: string, taskQueue: string): void {
    const query = `TaskQueue = '${taskQueue}'`;
    if (!this.sources.some((s) => s.address === address && s.query === query)) this.addSource(address, query);
  }

  /** Every workflow of a server that may be gone when the file ends (the demo's): call snapshot() while it is up. */
  watchServer(address: string): void {
    if (!this.sources.some((s) => s.address === address && s.query === '')) this.addSource(address, '');
  }

  /** Lines a worker logged, read when the file ends. */
  watchLog(read: () => Material[]): void {
    this.logs.push(read);
  }

  /** Text files (a worker's log file, build logs under a staging directory), read when the file ends. */
  watchLogFiles(fileOrDir: string, label = path.basename(fileOrDir)): void {
    if (this.logFiles.has(fileOrDir)) return;
    this.logFiles.add(fileOrDir);
    this.watchLog(() => logFileMaterials(fileOrDir, label));
  }

  /** Private keys anywhere under this directory are secrets. */
  watchKeyFiles(root: string): void {
    this.keyRoots.add(root);
  }

  /** Credentials handed to a worker (static keys, its env for credential lookups): every value is a secret. */
  watchWorkerOverrides(overrides: unknown, label = 'worker override'): void {
    const walk = (v: unknown, at: string[]): void => {
      if (v === null || typeof v !== 'object') return;
      for (const [k, child] of Object.entries(v)) {
        const where = [...at, k];
        if (typeof child === 'string' && (/secret|password|token|apikey|privatekey/i.test(k) || at.at(-1) === 'env')) this.secrets.add(`${label} ${where.join('.')}`, child);
        else walk(child, where);
        if (k === 'env' && child && typeof child === 'object') this.envs.push(child as Record<string, string>);
      }
    };
    walk(overrides, []);
  }

  /** The test's environment now: tests set and delete their secret variables before the file ends. */
  snapshotEnv(): void {
    this.envs.push({ ...process.env });
  }

  private addSource(address: string, query: string): void {
    this.sources.push({ address, query, kept: new Map(), final: new Set(), read: false, pending: new Map() });
    this.timer ??= setInterval(() => void this.samplePending(), 1000).unref();
  }

  private client(source: Source): Promise<Client> {
    source.client ??= Connection.connect({ address: source.address, connectTimeout: '5s' }).then(
      (connection) => new Client({ connection, dataConverter: { payloadCodecs: this.codecs } }),
    );
    source.client.catch(() => (source.client = undefined));
    return source.client;
  }

  /** Heartbeat details and last failures of the activities running now. */
  private async samplePending(): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      for (const source of this.sources) {
        const client = await this.client(source).catch(() => undefined);
        if (!client) continue;
        const running = `${source.query ? `${source.query} AND ` : ''}ExecutionStatus = 'Running'`;
        for await (const wf of client.workflow.list({ query: running })) {
          const raw = (await client.workflow.getHandle(wf.workflowId, wf.runId).describe().catch(() => undefined))?.raw;
          for (const a of raw?.pendingActivities ?? []) {
            const what = `pending activity ${a.activityType?.name} (id ${a.activityId}, attempt ${a.attempt})`;
            for (const [place, value] of [[`${what} heartbeat details`, a.heartbeatDetails], [`${what} last failure`, a.lastFailure]] as const) {
              if (!value) continue;
              const text = JSON.stringify(await decoded(value, this.codecs, this.refs));
              source.pending.set(`${wf.runId} ${place} ${text}`, { workflowId: wf.workflowId, place, text });
            }
          }
        }
      }
    } catch {
      // A server going away mid-sample (a demo stopping) leaves what was kept.
    } finally {
      this.sampling = false;
    }
  }

  /**
   * Reads every watched workflow now: its history, memo and search attributes, kept in case the server goes away (a
   * test file stopping its own server in afterAll). A run read once closed is not read again.
   */
  async snapshot(): Promise<void> {
    for (const source of this.sources) {
      const client = await this.client(source);
      for await (const wf of client.workflow.list({ query: source.query || undefined })) {
        const run = `${wf.workflowId} ${wf.runId}`;
        if (source.final.has(run)) continue;
        source.kept.set(run, await this.workflowMaterials(client, wf.workflowId, wf.runId));
        if (wf.status.name !== 'RUNNING') source.final.add(run);
      }
      source.read = true;
    }
  }

  private async workflowMaterials(client: Client, workflowId: string, runId: string): Promise<Material[]> {
    const handle = client.workflow.getHandle(workflowId, runId);
    const out: Material[] = [];
    for (const event of (await handle.fetchHistory()).events ?? []) {
      const place = `history event ${String(event.eventId)} (${eventName(event.eventType)})`;
      out.push({ workflowId, place, text: JSON.stringify(await decoded(event, this.codecs, this.refs)) });
    }
    const described = await handle.describe();
    for (const [key, value] of Object.entries(described.memo ?? {})) out.push({ workflowId, place: `memo ${key}`, text: JSON.stringify(value) });
    for (const [key, value] of Object.entries(described.searchAttributes ?? {}))
      out.push({ workflowId, place: `search attribute ${key}`, text: JSON.stringify(value) });
    return out;
  }

  /** Secrets the file used that no one registered by hand: resolved references, secret variables, key files. */
  private resolveSecrets(): void {
    this.snapshotEnv();
    for (const env of this.envs)
      for (const [name, value] of Object.entries(env)) {
        if (!value) continue;
        const referenced = this.refs.env.has(name) || [...this.refs.prefixes].some((p) => name.startsWith(`${p}_`));
        if (!referenced && !SECRET_NAME.test(name)) continue;
        if (value.startsWith('/') && !value.includes('\n')) this.secrets.addFile(`the file named by ${name}`, value);
        else this.secrets.add(`the value of ${name}`, value);
      }
    for (const file of this.refs.files) this.secrets.addFile(`the key file ${file}`, file);
    for (const root of this.keyRoots) for (const file of privateKeyFiles(root)) this.secrets.addFile(`the private key ${path.relative(root, file)}`, file);
  }

  /** Stops sampling, reads everything one last time and scans it. */
  async finish(): Promise<{ findings: Finding[]; summary: string }> {
    clearInterval(this.timer);
    while (this.sampling) await new Promise((r) => setTimeout(r, 50));
    await this.samplePending();
    await this.snapshot().catch((err: Error) => {
      if (!this.sources.every((s) => s.read)) throw err;
    });
    const materials = [
      ...this.sources.flatMap((s) => [...[...s.kept.values()].flat(), ...s.pending.values()]),
      ...this.logs.flatMap((read) => read()),
    ];
    this.resolveSecrets();
    for (const s of this.sources) await s.client?.then((c) => c.connection.close()).catch(() => undefined);
    const count = (re: RegExp) => materials.filter((m) => re.test(m.place)).length;
    const runs = this.sources.reduce((n, s) => n + s.kept.size, 0);
    const labels = [...new Set(this.secrets.entries().map(([, label]) => label))];
    const summary =
      `secret scan: ${this.secrets.size} secret strings of ${labels.length} secrets (${labels.join('; ')}) in ${runs} workflow runs (${count(/^history event/)} history events, ` +
      `${count(/^memo/)} memo fields, ${count(/^search attribute/)} search attributes, ${count(/^pending activity/)} pending-activity samples) ` +
      `and ${materials.length - count(/^(history|memo|search|pending)/)} log lines`;
    return { findings: scan(materials, this.secrets), summary };
  }
}

/** One material per line of a log file, or of every *.log file under a directory. */
export function logFileMaterials(fileOrDir: string, label: string): Material[] {
  if (!existsSync(fileOrDir)) return [];
  const files = statSync(fileOrDir).isDirectory()
    ? (readdirSync(fileOrDir, { recursive: true }) as string[]).filter((f) => f.endsWith('.log')).map((f) => path.join(fileOrDir, f))
    : [fileOrDir];
  return files.flatMap((file) => {
    const name = file === fileOrDir ? label : `${label}/${path.relative(fileOrDir, file)}`;
    return readFileSync(file, 'utf8')
      .split('\n')
      .map((text, i) => ({ place: `${name} line ${i + 1}`, text }));
  });
}

/** A worker's log entry as the Temporal runtime hands it to a logger. */
export interface LogEntry {
  level: string;
  message: string;
  meta?: Record<string, unknown>;
}

export const logEntryMaterials = (entries: LogEntry[], label: string): Material[] =>
  entries.map((e, i) => ({
    workflowId: typeof e.meta?.workflowId === 'string' ? e.meta.workflowId : undefined,
    place: `${label} line ${i + 1} (${e.level} ${e.message.slice(0, 60)})`,
    text: `${e.message} ${inspect(e.meta ?? {}, { depth: 8, breakLength: Infinity, maxStringLength: Infinity })}`,
  }));

/** Private key files (PEM or OpenSSH) under root; large files, symlinks and container storage are not looked into. */
function privateKeyFiles(root: string, depth = 8): string[] {
  if (depth === 0) return [];
  let entries;
  try {
    entries = readdirSync(root, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const file = path.join(root, e.name);
    if (e.isDirectory() && !['node_modules', 'storage', 'registry'].includes(e.name)) return privateKeyFiles(file, depth - 1);
    if (!e.isFile()) return [];
    try {
      if (lstatSync(file).size > 16 * 1024) return [];
      return /^-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(readFileSync(file, 'utf8')) ? [file] : [];
    } catch {
      return [];
    }
  });
}

/** This test file's scan: the harnesses register into it, and it runs when the file ends. */
export const fileScan = new FileScan();
let installed = false;

/**
 * Registers the scan's hooks on the test file being collected (once, and only under vitest: the harness is also
 * imported by scripts). Registered at import, before the file's own hooks, the scan runs after them: once its
 * workers have stopped.
 */
export function scanSecretsWhenTheFileEnds(): void {
  if (installed || !process.env.VITEST) return;
  installed = true;
  // vitest's own hooks, from its globals (vitest.config.mts: globals): importing 'vitest' would break the benches,
  // which load the harness under tsx, outside vitest.
  const { afterAll, afterEach } = globalThis as unknown as typeof import('vitest');
  // After each test, while the file's own servers still run: its environment, and what Temporal holds so far.
  afterEach(async () => {
    fileScan.snapshotEnv();
    // A server this file never reached is reported by the scan at the end; here, a test may just have stopped it.
    if (fileScan.active) await fileScan.snapshot().catch(() => undefined);
  }, 180_000);
  afterAll(async () => {
    if (!fileScan.active) return;
    const { findings, summary } = await fileScan.finish();
    if (findings.length) throw new Error(`${summary}: ${findings.length} found\n${describeFindings(findings)}`);
    console.log(`${summary}: none found`);
  }, 180_000);
}
