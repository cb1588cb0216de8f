// The namespace one-shot of docker-compose.yml, run as written (after compose's `$$` → `$`) by sh with the real
// Temporal CLI against the rig's Temporal server, into a namespace of this test's own: it creates the namespace with
// its retention and registers every search attribute the workflows set, and a second run changes nothing and
// succeeds, as a `docker compose up` after an upgrade needs.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import type { RigInfo } from '../rig/release-harness';
import { tool } from '../../scripts/servers/tools';

const run = promisify(execFile);
const rig = inject('rig') as RigInfo;
const compose = parse(readFileSync(path.resolve(__dirname, '../../docker-compose.yml'), 'utf8'));
/** The CLI's type names as the server's enum. */
const TYPES = { Keyword: encodeSearchAttributeIndexedValueType('KEYWORD'), KeywordList: encodeSearchAttributeIndexedValueType('KEYWORD_LIST') };

let connection: Connection;

beforeAll(async () => {
  connection = await Connection.connect({ address: rig.temporalAddress });
});

afterAll(async () => {
  await connection?.close();
});

describe('docker-compose.yml namespace set-up', () => {
  it('creates the namespace and its search attributes on a real server, and can run again', async () => {
    const setup = Object.values(compose.services as Record<string, any>).find((s) =>
      (s.command as string[] | undefined)?.join('\n').includes('operator namespace create'),
    );
    expect(setup, 'a compose service that runs `temporal operator namespace create`').toBeDefined();
    const composeNamespace = compose.services.worker.environment.TEMPORAL_NAMESPACE;
    const namespace = `compose-${randomUUID().slice(0, 8)}`;
    const script = (setup.command as string[])
      .join('\n')
      .replace(/\$\$/g, '$')
      .replaceAll(`--namespace ${composeNamespace}`, `--namespace ${namespace}`);
    const env = {
      ...process.env,
      PATH: `${path.dirname(tool('temporal'))}:${process.env.PATH}`,
      TEMPORAL_ADDRESS: rig.temporalAddress,
    };
    for (const attempt of [1, 2]) {
      const result = await run('sh', ['-euc', script], { env }).catch((err) => err);
      expect(result.code, `run ${attempt}: ${result.stderr}`).toBeUndefined();
    }

    const described = await connection.workflowService.describeNamespace({ namespace });
    expect(Number(described.config?.workflowExecutionRetentionTtl?.seconds)).toBe(30 * 86400);
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) expect(customAttributes?.[name], name).toBe(TYPES[type]);
  });
});
