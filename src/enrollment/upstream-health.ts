import type { Store } from '../store/types.js';
import { leaseFor, type ClusterNode } from './node.js';

const FIRST_PROBE_MS = 1_000;
const MAX_PROBE_MS = 60_000;
/**
 * How old this node's copy of the shared health may get. It is read on every
 * enrollment (probeDueAt), so it is a copy, not a query: another node's
 * failure or recovery reaches this node within this long plus one retry
 * worker interval (refresh() runs from the worker's scan).
 */
export const HEALTH_REFRESH_MS = 1_000;

/** The delay before the next probe after `failures` failed ones: exponential, capped, jittered. */
export function probeDelayMs(failures: number): number {
  const ceiling = Math.min(MAX_PROBE_MS, FIRST_PROBE_MS * 2 ** (failures - 1));
  // Full jitter between half and all of the ceiling: RA nodes that lost the same upstream do not retry in step.
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/**
 * Whether each profile's upstream is answering. After a failure, queued
 * requests are not all retried on their own schedules: one probe goes out
 * at exponentially growing, jittered intervals, and as soon as one succeeds
 * the whole queue drains at full speed.
 *
 * The state is the store's (table upstream_health), shared by every node on
 * it (issue #13): a failure on any node sets the cluster's next probe, one
 * node claims each probe (Store.claimUpstreamProbe), and a success on any
 * node clears it. Each node keeps a copy for the hot path, refreshed at most
 * every HEALTH_REFRESH_MS, and updated at once by what this node itself sees.
 */
export class UpstreamHealth {
  private failing = new Map<string, number>();
  private refreshedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly store: Store,
    private readonly node: ClusterNode,
  ) {}

  /** Records a failure and returns when to try this upstream next. */
  async failed(profile: string, now: Date): Promise<Date> {
    // Requests that were already on their way when the upstream went away fail together: one step of the backoff, not
    // one each (32 of them would take the next probe straight to the 60 s ceiling). Only a failed probe steps it up.
    const recorded = await this.store.recordUpstreamFailure(profile, now, probeDelayMs);
    this.failing.set(profile, recorded.nextProbeAt.getTime());
    return recorded.nextProbeAt;
  }

  /** Records a success; true when the upstream had been failing. */
  async succeeded(profile: string): Promise<boolean> {
    // Only when this node saw it failing: a success on a healthy upstream (every enrollment) costs no query. A failure
    // another node recorded in the last refresh interval is cleared by the next probe instead.
    if (!this.failing.delete(profile)) return false;
    await this.store.recordUpstreamSuccess(profile);
    return true;
  }

  /** Undefined: answering, send freely. Otherwise: only one probe, once this time has come. */
  probeDueAt(profile: string): number | undefined {
    return this.failing.get(profile);
  }

  /**
   * Takes this profile's probe for this node: true when it is the one to send
   * it. False also when the row was cleared meanwhile (another node saw the
   * upstream back): the copy is then read again at the next refresh.
   */
  async claimProbe(profile: string, now: Date): Promise<boolean> {
    if (await this.store.claimUpstreamProbe(profile, leaseFor(this.node, now), now)) return true;
    this.refreshedAt = Number.NEGATIVE_INFINITY;
    return false;
  }

  /** The probe this node claimed was not sent after all (the request was taken by another node, or refused here). */
  async releaseProbe(profile: string): Promise<void> {
    await this.store.releaseUpstreamProbe(profile, this.node.name);
  }

  /**
   * At this node's start: a probe of every failing upstream is due at once (as
   * when the health was each process's own, a restart tries at once rather
   * than wait out up to a minute of backoff), and a claim its previous run held ends.
   */
  async restarted(now: Date): Promise<void> {
    await this.store.restartUpstreamProbes(this.node.name, now);
    this.refreshedAt = Number.NEGATIVE_INFINITY;
  }

  /** Reads the shared state again when the copy is older than HEALTH_REFRESH_MS (of real time: the clock others see). */
  async refresh(): Promise<void> {
    const at = performance.now();
    if (at - this.refreshedAt < HEALTH_REFRESH_MS) return;
    this.refreshedAt = at;
    const rows = await this.store.listUpstreamHealth();
    this.failing = new Map(rows.map((row) => [row.profile, row.nextProbeAt.getTime()]));
  }
}
