// The worker process: connect, wire the real activities, run until SIGINT/SIGTERM. Errors end it with a message.
import { mkdir } from 'node:fs/promises';
import { createActivities } from '../activities';
import { connectWorker, createWorkers, installRuntime } from './run';
import { workerSettings } from './settings';
import { createActivityDeps } from './wiring';

export async function runWorkerFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const settings = workerSettings(env);
  await mkdir(settings.stagingDir, { recursive: true });
  await mkdir(settings.stateDir, { recursive: true });
  installRuntime(settings);
  const temporal = await connectWorker(settings, env);
  const workers = await createWorkers(temporal.connection, settings, createActivities(createActivityDeps(settings, temporal.client)));
  const stop = () => workers.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  console.log(
    `bootc-release worker ${settings.workerId}: ${settings.address}/${settings.namespace}, queues ${settings.taskQueue} + ${settings.stagingQueue}, definitions in ${settings.definitionsDir}`,
  );
  if (settings.allowInlineDefinitions)
    console.warn('bootc-release worker: inline definitions are allowed: anyone who can start a workflow chooses what this worker runs');
  try {
    await workers.run();
  } finally {
    await temporal.close();
  }
}

if (require.main === module) {
  runWorkerFromEnv().catch((err) => {
    console.error(`bootc-release worker: ${(err as Error).message}`);
    process.exit(1);
  });
}
