import { parseAndVerifyCsr } from '../pki/csr.js';
import { EstError } from '../errors.js';
import { namesForRecorded } from '../policy/decide.js';
import { CertificateView } from '../pki/certificate-view.js';
import type { ProfileDirectory } from '../policy/profile.js';
import type { NewRequest, RequeueScope, Store, WaitingRequest } from '../store/types.js';
import { leaseFor } from './node.js';
import type { Logger } from '../ops/logger.js';
import { LOG_EVENT } from '../ops/log-events.js';
import { LogThrottle } from '../ops/log-throttle.js';
import type { EnrollmentService } from './service.js';

export interface RetryWorkerOptions {
  /** How often to look for due requests when nothing else wakes the worker. */
  readonly intervalMs: number;
  /** Requests forwarded at once, across all profiles. */
  readonly concurrency: number;
  /** How often to take back requests whose node stopped holding them (their lease expired). */
  readonly sweepMs: number;
}

/**
 * Forwards again what is waiting: requests queued while the upstream was
 * unreachable (one probe at a time per upstream until it answers, then the
 * whole queue at full concurrency) and requests the upstream answered 202
 * (re-sent when its Retry-After has passed, RFC 7030 §4.2.3). At start it
 * queues again requests a previous process left in flight, so a crash loses
 * nothing; issued requests are final and never forwarded again. On a shared
 * store each waiting request is taken by one node under a lease
 * (Store.markForwarding), and what a node that died held is queued again
 * once its lease expires, by whichever node sweeps first.
 */
export class RetryWorker {
  private timer?: NodeJS.Timeout;
  private sweepTimer?: NodeJS.Timeout;
  private readonly inFlight = new Set<string>();
  private readonly probing = new Set<string>();
  private scanning = false;
  private rescan = false;
  private stopped = false;
  /** The worker scans every intervalMs: while the database is down each scan fails alike, logged once a minute. */
  private readonly failures = new LogThrottle(60_000);
  /** When a scan first found the database unavailable; the next scan that succeeds says it is back. */
  private storeDownSince?: number;

  constructor(
    private readonly service: EnrollmentService,
    private readonly store: Store,
    private readonly profiles: ProfileDirectory,
    private readonly logger: Logger,
    private readonly now: () => Date,
    private readonly options: RetryWorkerOptions,
  ) {}

  async start(): Promise<void> {
    await this.requeue({ now: this.now(), restartedOwner: this.service.node.name }, 'est-ra stopped while forwarding it');
    await this.service.health.restarted(this.now());
    this.timer = setInterval(() => this.wake(), this.options.intervalMs);
    this.timer.unref();
    this.sweepTimer = setInterval(() => void this.sweep(), this.options.sweepMs);
    this.sweepTimer.unref();
    this.wake();
  }

  /** Says this node is alive (the registry, `est-ra nodes`), and takes back what a node that stopped (or died) held past its lease. */
  private async sweep(): Promise<void> {
    try {
      const { name, instance } = this.service.node;
      // Another process took this name while this one went unseen for a whole lease (a frozen VM, a cut link): the admin must know.
      if (!(await this.store.nodeSeen(name, instance, this.now()))) this.logger.error(LOG_EVENT.nodeNameLost, { node: name, instance });
      if (await this.requeue({ now: this.now() }, 'the node forwarding it stopped (its lease expired)')) this.wake();
    } catch (err) {
      this.failed(err);
    }
  }

  /** A scan, sweep or probe release that failed (the database unreachable, most likely): its cause, once a minute per cause. */
  private failed(err: unknown): void {
    if (err instanceof EstError && err.code === 'EST_STORE_UNAVAILABLE') this.storeDownSince ??= Date.now();
    const cause = err instanceof EstError && err.cause !== undefined ? err.cause : err;
    const error = cause instanceof Error ? cause.message : String(cause);
    const throttled = this.failures.take(error, Date.now());
    if (throttled.log) this.logger.error(LOG_EVENT.retryFailed, { error, ...(throttled.suppressed ? { suppressed: throttled.suppressed } : {}) });
  }

  /** The end of a database outage, for the journal (its start is the first `store unavailable` line). */
  private storeAnswered(): void {
    if (this.storeDownSince === undefined) return;
    this.logger.info(LOG_EVENT.storeRecovered, { unavailable_for_s: Math.round((Date.now() - this.storeDownSince) / 1000) });
    this.storeDownSince = undefined;
  }

  /** Queues again the in-flight requests of `scope`; true when there were any. */
  private async requeue(scope: RequeueScope, cause: string): Promise<boolean> {
    const forwarding = this.profiles.profiles.filter((profile) => profile.forwardsCsrUnchanged).map((profile) => profile.name);
    const requeued = await this.store.requeueInterrupted(forwarding, scope);
    if (requeued.length === 0) return false;
    this.logger.warn(LOG_EVENT.requestsRequeued, { count: requeued.length });
    // Each one by id, so an admin can find the request and the second certificate it may have at the upstream.
    for (const request of requeued.filter((r) => r.possiblyIssuedTwiceUpstream))
      this.logger.warn(LOG_EVENT.possiblyIssuedTwice, { id: request.id, profile: request.profile, cause });
    return true;
  }

  /** Waits for forwards in progress, and sends nothing new. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.sweepTimer);
    while (this.inFlight.size > 0 || this.scanning) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  /** Looks for due requests soon (coalesced: one scan at a time). */
  wake(): void {
    if (this.stopped) return;
    if (this.scanning) {
      this.rescan = true;
      return;
    }
    this.scanning = true;
    this.scan()
      .then(() => this.storeAnswered())
      .catch((err: unknown) => this.failed(err))
      .finally(() => {
        this.scanning = false;
        if (this.rescan) {
          this.rescan = false;
          this.wake();
        }
      });
  }

  private async scan(): Promise<void> {
    // Here, not per enrollment: the worker scans every intervalMs, and refresh() reads the store at most once a second.
    await this.service.health.refresh();
    const free = this.options.concurrency - this.inFlight.size;
    if (free <= 0) return;
    const now = this.now();
    const waiting = await this.store.listWaiting(now, free + this.inFlight.size);
    let started = 0;
    for (const request of waiting) {
      if (started >= free) break;
      if (this.inFlight.has(request.id)) continue;
      const may = await this.mayForward(request, now);
      if (may === 'no') continue;
      started++;
      this.inFlight.add(request.id);
      void this.forward(request, may === 'probe').finally(() => {
        this.inFlight.delete(request.id);
        this.wake();
      });
    }
  }

  /**
   * Queued requests of a failing upstream wait for one probe to succeed: one
   * at a time on this node, and one in the cluster (the store's claim).
   */
  private async mayForward(request: WaitingRequest, now: Date): Promise<'yes' | 'probe' | 'no'> {
    if (request.state !== 'queued') return 'yes';
    const probeDueAt = this.service.health.probeDueAt(request.profile);
    if (probeDueAt === undefined) return 'yes';
    if (probeDueAt > now.getTime() || this.probing.has(request.profile)) return 'no';
    this.probing.add(request.profile);
    if (await this.service.health.claimProbe(request.profile, now)) return 'probe';
    this.probing.delete(request.profile);
    return 'no';
  }

  private async forward(request: WaitingRequest, probe: boolean): Promise<void> {
    const record: NewRequest = {
      id: request.id,
      receivedAt: this.now(),
      profile: request.profile,
      peerAddress: '',
      principal: request.principal,
      operation: request.operation,
    };
    const profile = this.profiles.named(request.profile);
    try {
      // This node's from here on (another node may have taken it first). A queued request is in flight now: a process
      // that stops leaves it received, and whoever takes it back knows it may have gone up.
      const now = this.now();
      if (!(await this.store.markForwarding(request.id, leaseFor(this.service.node, now), now))) return;
      let prepared;
      try {
        if (!profile) throw new EstError('EST_UNKNOWN_LABEL', { reason: `profile '${request.profile}' is no longer configured` });
        // Its key existed only in the memory of the process that stopped: the device sends the request again for a new one.
        if (request.operation === 'serverkeygen')
          throw new EstError('EST_UPSTREAM_UNAVAILABLE', {
            reason: 'serverkeygen interrupted by a stop of est-ra; its generated key is gone: send the request again',
          });
        // Its signature was checked when the device sent it; only the parse is needed again.
        const csr = await parseAndVerifyCsr(request.csr!, { signatureVerified: true });
        const current = request.clientCertificate ? CertificateView.parse(request.clientCertificate) : undefined;
        // The profile's name rules may have changed while it waited: refused then as a new request would be.
        prepared = { profile, csr, current, names: namesForRecorded(profile.names, csr, request.principal, current) };
      } catch (err) {
        // Final, so that nothing stays in flight: a request that cannot be forwarded any more is refused.
        const error = err instanceof EstError ? err : new EstError('EST_INTERNAL', { cause: err });
        await this.service.refuseAccepted(record, error);
        this.logger.warn(LOG_EVENT.backgroundRefused, { id: request.id, profile: request.profile, status: error.status, reason: error.reason });
        return;
      }
      const issued = await this.service.forward(prepared.profile, record, prepared.csr, prepared.current, prepared.names, request.attempts);
      // With the id the device was given (X-Request-Id), so its retries and this line can be matched.
      this.logger.info(LOG_EVENT.backgroundIssued, { id: request.id, profile: request.profile, was: request.state, serial: issued.serialNumber });
      if (request.possiblyIssuedTwiceUpstream)
        this.logger.warn(LOG_EVENT.possiblyIssuedTwice, { id: request.id, profile: request.profile, serial: issued.serialNumber });
    } catch (err) {
      // forward() recorded the outcome: waiting again (logged there when queued), or refused, told here.
      if (err instanceof EstError && err.code !== 'EST_PENDING')
        this.logger.warn(LOG_EVENT.backgroundRefused, { id: request.id, profile: request.profile, status: err.status, reason: err.reason });
    } finally {
      if (probe) await this.endProbe(request.profile);
    }
  }

  /** A probe's outcome (success, failure) already ended its claim; anything else (202, a refusal, not sent) ends it here. */
  private async endProbe(profile: string): Promise<void> {
    try {
      await this.service.health.releaseProbe(profile);
    } catch (err) {
      // Then it ends when its lease does.
      this.failed(err);
    } finally {
      this.probing.delete(profile);
    }
  }
}
