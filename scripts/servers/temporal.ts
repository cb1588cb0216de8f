// The real Temporal dev server (`temporal server start-dev`), with the search attributes releases set registered at
// start, and its Web UI unless headless.
import path from 'node:path';
import { SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { startLogged, stopProcess, type Service } from './process';
import { freePort, tool, waitForPort } from './tools';

export interface TemporalDevServer extends Service {
  uiAddress?: string;
}

export async function startTemporal(
  logDir: string,
  opts: { port?: number; uiPort?: number; headless?: boolean; dbFile?: string } = {},
): Promise<TemporalDevServer> {
  const port = opts.port ?? (await freePort());
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--namespace', 'default', '--log-level', 'warn'];
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=${type}`);
  if (opts.dbFile) args.push('--db-filename', opts.dbFile);
  let uiAddress: string | undefined;
  if (opts.headless ?? true) args.push('--headless');
  else {
    const uiPort = opts.uiPort ?? port + 1000;
    args.push('--ui-port', String(uiPort));
    uiAddress = `http://127.0.0.1:${uiPort}`;
  }
  const child = startLogged(tool('temporal'), args, path.join(logDir, 'temporal.log'));
  await waitForPort('127.0.0.1', port, 60_000, 'temporal dev server');
  return { address: `127.0.0.1:${port}`, uiAddress, stop: () => stopProcess(child) };
}
