// Release outcomes for Prometheus, recorded through the workflow's metric meter (which the SDK keeps from
// double-counting on replay): how many releases ended in which stage, and how long they took.
import { metricMeter, workflowInfo } from '@temporalio/workflow';
import type { ReleaseStage } from './messages';

export function recordReleaseEnd(definition: string | undefined, stage: ReleaseStage): void {
  const tags = { definition: definition ?? 'unresolved', stage };
  metricMeter.createCounter('bootc_release_releases', 'releases', 'Releases that ended, by definition and final stage').add(1, tags);
  const seconds = (Date.now() - workflowInfo().startTime.getTime()) / 1000;
  metricMeter
    .createHistogram('bootc_release_release_duration', 'float', 'seconds', 'From start to the final stage, by definition and stage')
    .record(seconds, tags);
}
