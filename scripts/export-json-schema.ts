// Writes config/release.schema.json from the zod schema, for editors (yaml-language-server: `# yaml-language-server:
// $schema=../config/release.schema.json` at the top of a definition). Safe to run twice.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ReleaseDefinition } from '../config/schema';

export function releaseJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(ReleaseDefinition, { io: 'input', unrepresentable: 'any' }),
    title: 'bootc-release definition',
  };
}

if (require.main === module) {
  const file = path.resolve(__dirname, '../config/release.schema.json');
  writeFileSync(file, `${JSON.stringify(releaseJsonSchema(), null, 2)}\n`);
  console.log(`wrote ${file}`);
}
