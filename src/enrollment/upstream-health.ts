const FIRST_PROBE_MS = 1_000;
const MAX_PROBE_MS = 60_000;

/**
 * Whether each profile's upstream is answering. After a failure, queued
 * requests are not all retried on their own schedules: one probe goes out
 * at exponentially growing, jittered intervals, and as soon as one succeeds
 * the whole queue drains at full speed.
 */
export class UpstreamHealth {
  private readonly failing = new Map<string, { failures: number; nextProbeAt: number }>();

  /** Records a failure and returns when to try this upstream next. */
  failed(profile: string, now: Date): Date {
    const current = this.failing.get(profile);
    // Requests that were already on their way when the upstream went away fail
    // together: one step of the backoff, not one each (32 of them would take the
    // next probe straight to the 60 s ceiling). Only a failed probe steps it up.
    if (current && now.getTime() < current.nextProbeAt) return new Date(current.nextProbeAt);
    const failures = (current?.failures ?? 0) + 1;
    const ceiling = Math.min(MAX_PROBE_MS, FIRST_PROBE_MS * 2 ** (failures - 1));
    // Full jitter between half and all of the ceiling: RA nodes that lost the same upstream do not retry in step.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    const nextProbeAt = Math.ceil(now.getTime() + delay);
    this.failing.set(profile, { failures, nextProbeAt });
    return new Date(nextProbeAt);
  }

  /** Records a success; true when the upstream had been failing. */
  succeeded(profile: string): boolean {
    return this.failing.delete(profile);
  }

  /** Undefined: answering, send freely. Otherwise: only one probe, once this time has come. */
  probeDueAt(profile: string): number | undefined {
    return this.failing.get(profile)?.nextProbeAt;
  }
}
