// What a worker tells Prometheus. The SDK's own metrics (task latencies, slots, failures per activity type) come
// from the Temporal runtime when BOOTC_RELEASE_METRICS names a bind address; on top, every step's outcome and the
// bytes a release moved, counted here as activities end, and release outcomes and durations counted by the release
// workflow (workflows/release-metrics.ts).
import { CancelledFailure } from '@temporalio/common';
import type { ActivityInboundCallsInterceptor, ActivityInterceptorsFactory } from '@temporalio/worker';
import type { Candidate, StagedArtifact } from '../activities/types';

/** Counts `bootc_release_steps{step, outcome}` and the bytes fetched and published, per finished activity. */
export const stepMetrics: ActivityInterceptorsFactory = (ctx) => {
  const meter = ctx.metricMeter;
  const steps = meter.createCounter('bootc_release_steps', 'steps', 'Release steps (activities) that ended, by step and outcome');
  const fetched = meter.createCounter('bootc_release_fetched_bytes', 'bytes', 'Data bytes of the artifacts fetched to staging');
  const published = meter.createCounter('bootc_release_published_bytes', 'bytes', 'Apparent size of the images published, by target kind');
  const inbound: ActivityInboundCallsInterceptor = {
    async execute(input, next) {
      const step = ctx.info.activityType;
      try {
        const result = await next(input);
        steps.add(1, { step, outcome: 'ok' });
        if (step === 'fetchArtifacts' && Array.isArray(result))
          fetched.add((result as StagedArtifact[]).reduce((n, a) => n + (a.dataBytes ?? 0), 0));
        if (step === 'publishArtifact' && Array.isArray(result))
          for (const c of result as Candidate[]) published.add(c.size ?? 0, { target_kind: c.kind });
        return result;
      } catch (err) {
        steps.add(1, { step, outcome: err instanceof CancelledFailure ? 'cancelled' : 'failed' });
        throw err;
      }
    },
  };
  return { inbound };
};
