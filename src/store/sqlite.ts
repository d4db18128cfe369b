import { issuedValues, requestValues, SqliteDatabase, sqliteMigrationStatus, type WriteOperation, type WriteResult } from './sqlite-database.js';
import { statSync } from 'node:fs';
import type { MigrationStatus } from './migrations.js';
import type {
  ApprovalDecision,
  ApprovalQuery,
  ApprovalWithRequest,
  CertificateQuery,
  CertificateRecord,
  FoundRequest,
  InterruptedRequest,
  IssuedOutcome,
  Lease,
  NewRequest,
  NodeRecord,
  Operation,
  PasscodeEvent,
  PasscodeRecord,
  RefusalCount,
  RefusalEvent,
  RefusalOptions,
  RequestQuery,
  RequestRecord,
  RequeueScope,
  Store,
  StoreStats,
  UpstreamHealthRecord,
  WaitingRequest,
} from './types.js';

interface PendingWrite {
  readonly operation: WriteOperation;
  /** Settles with the rows the write changed, once it is durable. */
  readonly resolve: (changes: number) => void;
  readonly reject: (err: Error) => void;
}

/**
 * The embedded store: one SQLite file (WAL, synchronous=FULL), so a recorded
 * request survives a crash of the process or the machine.
 *
 * Writes are group-committed: those made while a commit is gathering share
 * one transaction and so one fsync, and each promise settles only after that
 * commit. A commit gathers for one turn of the event loop, and for more turns
 * while each turn brings more writes, up to MAX_GATHER_MS: one device at a
 * time pays no extra latency, while under load more writes share each fsync
 * (a CPU profile at c32, mTLS, had commits of one or two writes blocking the
 * event loop ~17 % of the time). better-sqlite3 is synchronous, so an fsync
 * per write (~0.3 ms here, more under load) would otherwise stall every
 * connection twice per enrollment. (A writer thread was tried: it cost ~15 MB
 * of RSS for its own V8 heap and did not measurably improve p99; see issue #3's note.)
 */
const MAX_GATHER_MS = 4;

export class SqliteStore implements Store {
  private readonly database: SqliteDatabase;
  private pending: PendingWrite[] = [];
  private gatherStartedAt = 0;

  constructor(
    private readonly path: string,
    options: { readonly readOnly?: boolean } = {},
  ) {
    this.database = new SqliteDatabase(path, options);
  }

  static async migrationStatus(path: string): Promise<MigrationStatus> {
    return sqliteMigrationStatus(path);
  }

  private write(operation: WriteOperation): Promise<number> {
    return new Promise((resolve, reject) => {
      this.pending.push({ operation, resolve, reject });
      if (this.pending.length > 1) return;
      this.gatherStartedAt = performance.now();
      setImmediate(() => this.commitWhenQuiet(1));
    });
  }

  /** Commits, unless the last turn of the loop brought more writes and there is time to gather them too. */
  private commitWhenQuiet(seen: number): void {
    const count = this.pending.length;
    if (count > seen && performance.now() - this.gatherStartedAt < MAX_GATHER_MS) setImmediate(() => this.commitWhenQuiet(count));
    else this.commitPending();
  }

  private commitPending(): void {
    const batch = this.pending;
    if (batch.length === 0) return; // already committed by close()
    this.pending = [];
    let results: WriteResult[];
    try {
      results = this.database.applyWrites(batch.map((write) => write.operation));
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      results = batch.map(() => ({ error }));
    }
    batch.forEach((write, i) => {
      const result = results[i]!;
      if ('error' in result) write.reject(result.error);
      else write.resolve(result.changes);
    });
  }

  async recordRequest(
    request: NewRequest,
    passcodeUse?: { readonly passcodeId: string; readonly now: Date },
    approval?: { readonly expiresAt: Date },
  ): Promise<boolean> {
    const use = passcodeUse && { id: passcodeUse.passcodeId, now: passcodeUse.now.toISOString() };
    return (
      (await this.write({
        kind: 'recordRequest',
        request: requestValues(request),
        ...(use ? { passcodeUse: use } : {}),
        ...(approval ? { approvalExpiresAt: approval.expiresAt.toISOString() } : {}),
      })) === 1
    );
  }

  async decideApproval(requestId: string, decision: ApprovalDecision): Promise<boolean> {
    const values = {
      id: requestId,
      state: decision.approved ? ('approved' as const) : ('rejected' as const),
      at: decision.at.toISOString(),
      by: decision.by,
      reason: decision.reason ?? null,
      requestReason: decision.approved ? `approved by ${decision.by}; being issued` : decision.refusal,
    };
    return (await this.write({ kind: 'decideApproval', values })) === 1;
  }

  async expireApprovals(now: Date, refusal: string): Promise<number> {
    return this.write({ kind: 'expireApprovals', values: { now: now.toISOString(), refusal } });
  }

  async getApproval(requestId: string): Promise<ApprovalWithRequest | undefined> {
    return this.database.getApproval(requestId);
  }

  async queryApprovals(query: ApprovalQuery): Promise<ApprovalWithRequest[]> {
    return this.database.queryApprovals(query);
  }

  async approvalsSince(since?: Date): Promise<ApprovalWithRequest[]> {
    return this.database.approvalsSince(since);
  }

  async countPendingApprovals(now: Date): Promise<Record<string, number>> {
    return this.database.countPendingApprovals(now);
  }

  async recordIssued(requestId: string, completedAt: Date, outcome: IssuedOutcome): Promise<void> {
    await this.write({ kind: 'recordIssued', values: issuedValues(requestId, completedAt, outcome) });
  }

  async recordRefused(request: NewRequest, completedAt: Date, status: number, reason: string, options: RefusalOptions = {}): Promise<void> {
    await this.write({
      kind: 'recordRefused',
      values: { ...requestValues(request), completedAt: completedAt.toISOString(), status, reason },
      ...(options.refundPasscodeUse ? { refundPasscodeUse: options.refundPasscodeUse } : {}),
    });
  }

  async recordRelayed(request: NewRequest, completedAt: Date, status: number, reason: string): Promise<void> {
    await this.write({ kind: 'recordRelayed', values: { ...requestValues(request), completedAt: completedAt.toISOString(), status, reason } });
  }

  async recordWaiting(
    requestId: string,
    state: 'queued' | 'pending',
    nextAttemptAt: Date,
    attempts: number,
    reason: string,
    outcomeUnknown = false,
  ): Promise<void> {
    await this.write({
      kind: 'recordWaiting',
      values: { id: requestId, state, nextAttemptAt: nextAttemptAt.toISOString(), attempts, reason, outcomeUnknown: outcomeUnknown ? 1 : 0 },
    });
  }

  async markForwarding(requestId: string, lease: Lease, now: Date): Promise<boolean> {
    const values = { id: requestId, owner: lease.owner, expiresAt: lease.expiresAt.toISOString(), now: now.toISOString() };
    return (await this.write({ kind: 'markForwarding', values })) === 1;
  }

  async requeueInterrupted(forwardingProfiles: readonly string[], scope: RequeueScope): Promise<InterruptedRequest[]> {
    return this.database.requeueInterrupted(forwardingProfiles, scope);
  }

  // The upstream's health: direct, not group-committed; it is a hint for scheduling probes, not a record a device relies on.
  async recordUpstreamFailure(profile: string, now: Date, delayMs: (failures: number) => number): Promise<UpstreamHealthRecord> {
    return this.database.recordUpstreamFailure(profile, now, delayMs);
  }

  async recordUpstreamSuccess(profile: string): Promise<boolean> {
    return this.database.recordUpstreamSuccess(profile);
  }

  async claimUpstreamProbe(profile: string, lease: Lease, now: Date): Promise<boolean> {
    return this.database.claimUpstreamProbe(profile, lease, now);
  }

  async releaseUpstreamProbe(profile: string, owner: string): Promise<void> {
    this.database.releaseUpstreamProbe(profile, owner);
  }

  async restartUpstreamProbes(owner: string, now: Date): Promise<void> {
    this.database.restartUpstreamProbes(owner, now);
  }

  async listUpstreamHealth(): Promise<UpstreamHealthRecord[]> {
    return this.database.listUpstreamHealth();
  }

  // The node registry: direct, as the upstream's health; a few writes a minute.
  async getNode(name: string): Promise<NodeRecord | undefined> {
    return this.database.getNode(name);
  }

  async claimNode(node: NodeRecord, replacing: string | undefined): Promise<boolean> {
    return this.database.claimNode(node, replacing);
  }

  async nodeSeen(name: string, instance: string, now: Date): Promise<boolean> {
    return this.database.nodeSeen(name, instance, now);
  }

  async nodeStopped(name: string, instance: string, now: Date): Promise<void> {
    this.database.nodeStopped(name, instance, now);
  }

  async listNodes(): Promise<NodeRecord[]> {
    return this.database.listNodes();
  }

  async countWaiting(): Promise<Record<string, number>> {
    return this.database.countWaiting();
  }

  async listWaiting(dueBy: Date, limit: number): Promise<WaitingRequest[]> {
    return this.database.listWaiting(dueBy, limit);
  }

  async findByCsr(profile: string, operation: Operation, csrSha256: string): Promise<FoundRequest | undefined> {
    return this.database.findByCsr(profile, operation, csrSha256);
  }

  async findIssuedBySerial(serial: string): Promise<{ readonly profile: string; readonly der: Buffer } | undefined> {
    return this.database.findIssuedBySerial(serial);
  }

  async getIssuedCertificate(requestId: string): Promise<Buffer | undefined> {
    return this.database.getIssuedCertificate(requestId);
  }

  async getCached(key: string): Promise<Buffer | undefined> {
    return this.database.getCached(key);
  }

  async putCached(key: string, value: Buffer, updatedAt: Date): Promise<void> {
    await this.write({ kind: 'putCached', values: { key, value, updatedAt: updatedAt.toISOString() } });
  }

  async addPasscode(passcode: PasscodeRecord): Promise<void> {
    await this.write({ kind: 'addPasscode', values: passcode });
  }

  async listRequests(limit: number): Promise<RequestRecord[]> {
    return this.database.listRequests(limit);
  }

  async queryRequests(query: RequestQuery): Promise<RequestRecord[]> {
    return this.database.queryRequests(query);
  }

  async getRequest(id: string): Promise<RequestRecord | undefined> {
    return this.database.getRequest(id);
  }

  async queryCertificates(query: CertificateQuery): Promise<CertificateRecord[]> {
    return this.database.queryCertificates(query);
  }

  async getCertificate(serial: string): Promise<CertificateRecord | undefined> {
    return this.database.getCertificate(serial);
  }

  async refusalCountsSince(since?: Date): Promise<RefusalCount[]> {
    return this.database.refusalCountsSince(since);
  }

  async getPasscode(id: string): Promise<PasscodeRecord | undefined> {
    return this.database.getPasscode(id);
  }

  async findPasscode(policy: string, hash: string): Promise<PasscodeRecord | undefined> {
    return this.database.findPasscode(policy, hash);
  }

  async listPasscodes(policy?: string): Promise<PasscodeRecord[]> {
    return this.database.listPasscodes(policy);
  }

  async setPasscodeEnabled(id: string, enabled: boolean): Promise<boolean> {
    return (await this.write({ kind: 'setPasscodeEnabled', values: { id, enabled: enabled ? 1 : 0 } })) === 1;
  }

  async rotatePasscode(id: string, hash: string): Promise<boolean> {
    return (await this.write({ kind: 'rotatePasscode', values: { id, hash } })) === 1;
  }

  async passcodeEvents(since?: Date): Promise<PasscodeEvent[]> {
    return this.database.passcodeEvents(since);
  }

  async countRefusal(refusal: RefusalEvent): Promise<void> {
    const at = refusal.at.toISOString();
    await this.write({ kind: 'countRefusal', values: { ...refusal, at, hour: at.slice(0, 13) } });
  }

  async refusalCounts(limit: number): Promise<RefusalCount[]> {
    return this.database.refusalCounts(limit);
  }

  async prune(before: Date): Promise<number> {
    return this.write({ kind: 'prune', values: { before: before.toISOString() } });
  }

  async stats(): Promise<StoreStats> {
    const size = (file: string): number => {
      try {
        return statSync(file).size;
      } catch {
        return 0;
      }
    };
    return { ...this.database.stats(), bytes: size(this.path) + size(`${this.path}-wal`) };
  }

  async check(): Promise<string[]> {
    return this.database.check();
  }

  /** Commits what is queued, then closes the file. */
  async close(): Promise<void> {
    this.commitPending();
    this.database.close();
  }
}
