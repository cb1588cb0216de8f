// The shape of every AWS preflight: plain status sentences, each probe's failure classified and named after the config
// field to change, and the credentials checked first (nothing else is worth asking if they are refused).
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import type { CheckResult } from '../types';
import type { AwsClients, Sends } from './clients';
import { classifyAwsError } from './errors';

export function awsPreflight(what: string, fieldOf: (f: string) => string) {
  const result: CheckResult = { ok: true, messages: [] };
  const probe = async (start: string, f: string, fn: () => Promise<string>) => {
    result.messages.push(start);
    try {
      result.messages.push(await fn());
    } catch (err) {
      result.ok = false;
      result.messages.push(`Failed: ${classifyAwsError(err, what, fieldOf(f)).message}`);
    }
  };
  const credentials = (clients: Pick<AwsClients, 'sts'>) =>
    probe('Checking AWS credentials…', 'credentials', async () => {
      const who = await (clients.sts() as Sends<GetCallerIdentityCommand>).send(
        new GetCallerIdentityCommand({}),
      );
      return `Credentials work (account ${who.Account}).`;
    });
  return { result, probe, credentials };
}
