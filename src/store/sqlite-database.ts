import Database from 'better-sqlite3';
import type {
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
  PasscodeEvent,
  PasscodeRecord,
  RefusalCount,
  RefusalEvent,
  RequestQuery,
  RequestRecord,
  RequeueScope,
  StoreStats,
  UpstreamHealthRecord,
  WaitingRequest,
} from './types.js';
import type { MigrationStatus } from './migrations.js';
import {
  APPROVAL_COLUMNS,
  APPROVALS_WITH_REQUESTS,
  toApprovalRecord,
  toApprovalWithRequest,
  toCertificateRecord,
  toPasscodeRecord,
  toRefusalCount,
  toRequestRecord,
  type ApprovalColumns,
  type ApprovalRow,
  type CertificateRow,
  type PasscodeRow,
  type RefusalCountRow,
  type RequestRow,
  toUpstreamHealthRecord,
  type UpstreamHealthRow,
  toNodeRecord,
  type NodeRow,
} from './rows.js';

/** Schema migrations, applied in order; PRAGMA user_version counts how many ran. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE requests (
     id                 TEXT PRIMARY KEY,
     received_at        TEXT NOT NULL,
     completed_at       TEXT,
     profile            TEXT NOT NULL,
     peer_address       TEXT NOT NULL,
     principal          TEXT NOT NULL,
     operation          TEXT NOT NULL,
     csr                BLOB,
     csr_sha256         TEXT,
     client_certificate BLOB,
     state              TEXT NOT NULL CHECK (state IN ('received', 'queued', 'pending', 'issued', 'refused')),
     status             INTEGER,
     reason             TEXT,
     attempts           INTEGER NOT NULL DEFAULT 0,
     next_attempt_at    TEXT,
     serial             TEXT,
     subject            TEXT,
     not_after          TEXT
   );
   CREATE INDEX requests_received_at ON requests (received_at);
   CREATE INDEX requests_by_csr ON requests (profile, operation, csr_sha256);
   CREATE INDEX requests_waiting ON requests (state, next_attempt_at) WHERE state IN ('received', 'queued', 'pending');
   CREATE TABLE certificates (
     serial      TEXT PRIMARY KEY,
     request_id  TEXT NOT NULL REFERENCES requests (id),
     profile     TEXT NOT NULL,
     subject     TEXT NOT NULL,
     not_before  TEXT NOT NULL,
     not_after   TEXT NOT NULL,
     der         BLOB NOT NULL
   );
   CREATE INDEX certificates_subject ON certificates (subject);
   CREATE INDEX certificates_request ON certificates (request_id);
   CREATE TABLE passcodes (
     id          TEXT PRIMARY KEY,
     policy      TEXT NOT NULL,
     username    TEXT,
     hash        TEXT NOT NULL UNIQUE,
     description TEXT,
     created_at  TEXT NOT NULL,
     enabled     INTEGER NOT NULL DEFAULT 1,
     max_uses    INTEGER,
     uses        INTEGER NOT NULL DEFAULT 0,
     expires_at  TEXT
   );
   CREATE TABLE cache (
     key        TEXT PRIMARY KEY,
     value      BLOB NOT NULL,
     updated_at TEXT NOT NULL
   );`,
  // Values registered with a passcode (the name policy's user_supplied source), as JSON.
  `ALTER TABLE passcodes ADD COLUMN registered_values TEXT`,
  // Refusals before authentication, counted per address, profile, operation and code per hour instead of one row each.
  `CREATE TABLE refusal_counts (
     address     TEXT NOT NULL,
     profile     TEXT NOT NULL,
     operation   TEXT NOT NULL,
     code        TEXT NOT NULL,
     hour        TEXT NOT NULL,
     status      INTEGER NOT NULL,
     last_reason TEXT NOT NULL,
     count       INTEGER NOT NULL,
     first_at    TEXT NOT NULL,
     last_at     TEXT NOT NULL,
     PRIMARY KEY (address, profile, operation, code, hour)
   );
   CREATE INDEX requests_completed ON requests (state, completed_at);`,
  // An earlier forward may have reached the upstream without an answer: forwarding again may issue twice there.
  `ALTER TABLE requests ADD COLUMN possibly_issued_twice_upstream INTEGER NOT NULL DEFAULT 0`,
  // What happened to passcodes, for the audit trail (est-ra audit export); the passcodes made before it were created then.
  `CREATE TABLE passcode_events (
     at          TEXT NOT NULL,
     passcode_id TEXT NOT NULL,
     policy      TEXT NOT NULL,
     event       TEXT NOT NULL CHECK (event IN ('created', 'disabled', 'enabled', 'rotated'))
   );
   CREATE INDEX passcode_events_at ON passcode_events (at);
   INSERT INTO passcode_events (at, passcode_id, policy, event) SELECT created_at, id, policy, 'created' FROM passcodes;`,
  // Requests awaiting an administrator's approval (require_approval_for_enroll/renew): a new request state, which
  // SQLite can add to the CHECK only by rebuilding the table (its "other kinds of table schema changes"; migrate()
  // runs with foreign keys off and checks them before committing), and the approvals themselves.
  `CREATE TABLE requests_rebuilt (
     id                 TEXT PRIMARY KEY,
     received_at        TEXT NOT NULL,
     completed_at       TEXT,
     profile            TEXT NOT NULL,
     peer_address       TEXT NOT NULL,
     principal          TEXT NOT NULL,
     operation          TEXT NOT NULL,
     csr                BLOB,
     csr_sha256         TEXT,
     client_certificate BLOB,
     state              TEXT NOT NULL CHECK (state IN ('received', 'queued', 'pending', 'awaiting_approval', 'issued', 'refused')),
     status             INTEGER,
     reason             TEXT,
     attempts           INTEGER NOT NULL DEFAULT 0,
     next_attempt_at    TEXT,
     serial             TEXT,
     subject            TEXT,
     not_after          TEXT,
     possibly_issued_twice_upstream INTEGER NOT NULL DEFAULT 0
   );
   INSERT INTO requests_rebuilt (id, received_at, completed_at, profile, peer_address, principal, operation, csr, csr_sha256,
       client_certificate, state, status, reason, attempts, next_attempt_at, serial, subject, not_after, possibly_issued_twice_upstream)
     SELECT id, received_at, completed_at, profile, peer_address, principal, operation, csr, csr_sha256,
       client_certificate, state, status, reason, attempts, next_attempt_at, serial, subject, not_after, possibly_issued_twice_upstream
     FROM requests ORDER BY rowid;
   DROP TABLE requests;
   ALTER TABLE requests_rebuilt RENAME TO requests;
   CREATE INDEX requests_received_at ON requests (received_at);
   CREATE INDEX requests_by_csr ON requests (profile, operation, csr_sha256);
   CREATE INDEX requests_waiting ON requests (state, next_attempt_at) WHERE state IN ('received', 'queued', 'pending');
   CREATE INDEX requests_completed ON requests (state, completed_at);
   CREATE TABLE approvals (
     request_id   TEXT PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
     state        TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'expired')),
     requested_at TEXT NOT NULL,
     expires_at   TEXT NOT NULL,
     decided_at   TEXT,
     decided_by   TEXT,
     reason       TEXT
   );
   CREATE INDEX approvals_pending ON approvals (expires_at) WHERE state = 'pending';
   CREATE INDEX approvals_decided_at ON approvals (decided_at);`,
  // The node working on a request and until when (types.ts Lease): what a stopped node held goes back to the queue.
  `ALTER TABLE requests ADD COLUMN lease_owner TEXT;
   ALTER TABLE requests ADD COLUMN lease_expires_at TEXT;`,
  // The upstream's health, one row per failing profile, the same table as PostgreSQL's (one node here, kept for parity).
  `CREATE TABLE upstream_health (
     profile          TEXT PRIMARY KEY,
     failures         INTEGER NOT NULL,
     next_probe_at    TEXT NOT NULL,
     probing_node     TEXT,
     probe_started_at TEXT,
     probe_expires_at TEXT
   );`,
  // The cluster's registry of node names and the process holding each (types.ts NodeRecord); one row here.
  `CREATE TABLE nodes (
     name         TEXT PRIMARY KEY,
     instance     TEXT NOT NULL,
     host         TEXT NOT NULL,
     machine_id   TEXT,
     pid          INTEGER NOT NULL,
     version      TEXT NOT NULL,
     started_at   TEXT NOT NULL,
     last_seen_at TEXT NOT NULL,
     stopped_at   TEXT
   );`,
];

/** One write, as plain data queued for the next group commit (sqlite.ts). */
export type WriteOperation =
  | {
      readonly kind: 'recordRequest';
      readonly request: RequestValues;
      readonly passcodeUse?: { readonly id: string; readonly now: string };
      /** Recorded awaiting_approval with a pending approval that expires then (ISO). */
      readonly approvalExpiresAt?: string;
    }
  | { readonly kind: 'recordIssued'; readonly values: IssuedValues }
  | {
      readonly kind: 'recordRefused';
      readonly values: RequestValues & { readonly completedAt: string; readonly status: number; readonly reason: string };
      /** The passcode whose use the request took, given back with the refusal. */
      readonly refundPasscodeUse?: string;
    }
  | { readonly kind: 'recordRelayed'; readonly values: RequestValues & { readonly completedAt: string; readonly status: number; readonly reason: string } }
  | { readonly kind: 'recordWaiting'; readonly values: WaitingValues }
  | { readonly kind: 'markForwarding'; readonly values: { readonly id: string; readonly owner: string; readonly expiresAt: string; readonly now: string } }
  | { readonly kind: 'putCached'; readonly values: { readonly key: string; readonly value: Buffer; readonly updatedAt: string } }
  | { readonly kind: 'addPasscode'; readonly values: PasscodeRecord }
  | { readonly kind: 'setPasscodeEnabled'; readonly values: { readonly id: string; readonly enabled: number } }
  | { readonly kind: 'rotatePasscode'; readonly values: { readonly id: string; readonly hash: string } }
  | { readonly kind: 'countRefusal'; readonly values: RefusalCountValues }
  | { readonly kind: 'prune'; readonly values: { readonly before: string } }
  | { readonly kind: 'decideApproval'; readonly values: ApprovalDecisionValues }
  | { readonly kind: 'expireApprovals'; readonly values: { readonly now: string; readonly refusal: string } };

/** An approval settled: approved (the request queued) or rejected/expired (the request refused with `refusal`). */
export interface ApprovalDecisionValues {
  readonly id: string;
  readonly state: 'approved' | 'rejected' | 'expired';
  readonly at: string;
  readonly by: string | null;
  readonly reason: string | null;
  /** approved: the request's reason while queued; otherwise the refusal the device is told. */
  readonly requestReason: string;
}

export type RefusalCountValues = Omit<RefusalEvent, 'at'> & { readonly at: string; readonly hour: string };

/** What one write did: the rows it changed, or why it failed. */
export type WriteResult = { readonly changes: number } | { readonly error: Error };

export interface RequestValues {
  readonly id: string;
  readonly receivedAt: string;
  readonly profile: string;
  readonly peerAddress: string;
  readonly principal: string;
  readonly operation: string;
  readonly csr: Buffer | null;
  readonly csrSha256: string | null;
  readonly clientCertificate: Buffer | null;
  readonly leaseOwner: string | null;
  readonly leaseExpiresAt: string | null;
}

export interface IssuedValues {
  readonly id: string;
  readonly completedAt: string;
  readonly serial: string;
  readonly subject: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly der: Buffer;
}

export interface WaitingValues {
  readonly id: string;
  readonly state: 'queued' | 'pending';
  readonly nextAttemptAt: string;
  readonly attempts: number;
  readonly reason: string;
  /** 1 when the failed attempt may have reached the upstream. */
  readonly outcomeUnknown: number;
}

export function requestValues(request: NewRequest): RequestValues {
  return {
    id: request.id,
    receivedAt: request.receivedAt.toISOString(),
    profile: request.profile,
    peerAddress: request.peerAddress,
    principal: JSON.stringify(request.principal),
    operation: request.operation,
    csr: request.csr ?? null,
    csrSha256: request.csrSha256 ?? null,
    clientCertificate: request.clientCertificate ?? null,
    leaseOwner: request.lease?.owner ?? null,
    leaseExpiresAt: request.lease?.expiresAt.toISOString() ?? null,
  };
}

export function issuedValues(requestId: string, completedAt: Date, outcome: IssuedOutcome): IssuedValues {
  return {
    id: requestId,
    completedAt: completedAt.toISOString(),
    serial: outcome.serial,
    subject: outcome.subject,
    notBefore: outcome.notBefore.toISOString(),
    notAfter: outcome.notAfter.toISOString(),
    der: outcome.certificate,
  };
}

/** The schema version of a SQLite file, read without applying anything (a missing file has none). */
export function sqliteMigrationStatus(path: string): MigrationStatus {
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_CANTOPEN') return { applied: 0, known: MIGRATIONS.length };
    throw err;
  }
  try {
    return { applied: db.pragma('user_version', { simple: true }) as number, known: MIGRATIONS.length };
  } finally {
    db.close();
  }
}

/**
 * The SQLite file itself: schema, migrations and statements, synchronous as
 * better-sqlite3 is. WAL with synchronous=FULL, so a committed write survives
 * a crash of the process or the machine.
 */
export class SqliteDatabase {
  private readonly db: Database.Database;
  private readonly statements: ReturnType<typeof prepareStatements>;

  /** @param options.readOnly SQLite refuses every write (`est-ra simulate`); the file must exist at the current schema version. */
  constructor(
    private readonly path: string,
    options: { readonly readOnly?: boolean } = {},
  ) {
    if (options.readOnly) {
      this.db = new Database(path, { readonly: true, fileMustExist: true });
      this.db.pragma('busy_timeout = 5000');
      const version = this.db.pragma('user_version', { simple: true }) as number;
      if (version !== MIGRATIONS.length)
        throw new Error(`${path} has store schema version ${version}, this est-ra ${MIGRATIONS.length}: start est-ra serve once to migrate it`);
      this.statements = prepareStatements(this.db);
      return;
    }
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    this.statements = prepareStatements(this.db);
  }

  /**
   * Foreign keys are off while migrating (a rebuilt table is dropped and
   * renamed under the keys pointing at it; the pragma cannot change inside
   * a transaction) and checked before each migration commits.
   */
  private migrate(): void {
    const applied = this.db.pragma('user_version', { simple: true }) as number;
    if (applied > MIGRATIONS.length)
      throw new Error(`${this.path} is at schema version ${applied}, newer than this est-ra knows (${MIGRATIONS.length}): upgrade est-ra`);
    if (applied >= MIGRATIONS.length) return;
    this.db.pragma('foreign_keys = OFF');
    try {
      for (let version = applied; version < MIGRATIONS.length; version++) {
        this.db.transaction(() => {
          this.db.exec(MIGRATIONS[version]!);
          const violations = this.db.pragma('foreign_key_check') as unknown[];
          if (violations.length > 0) throw new Error(`store migration ${version + 1} leaves ${violations.length} foreign key violations`);
          this.db.pragma(`user_version = ${version + 1}`);
        })();
      }
    } finally {
      this.db.pragma('foreign_keys = ON');
    }
  }

  /**
   * Applies writes in one transaction: one commit, one fsync. Each write is
   * its own savepoint, so one that fails rolls back alone; the result says
   * which failed.
   */
  applyWrites(operations: readonly WriteOperation[]): WriteResult[] {
    const results: WriteResult[] = [];
    this.db.transaction(() => {
      for (const operation of operations) {
        try {
          results.push({ changes: this.db.transaction(() => this.apply(operation))() });
        } catch (err) {
          results.push({ error: err instanceof Error ? err : new Error(String(err)) });
        }
      }
    })();
    return results;
  }

  /** Runs one write; returns the rows changed by its last statement. */
  private apply(operation: WriteOperation): number {
    switch (operation.kind) {
      case 'recordRequest': {
        // The passcode use, the request and its approval in one transaction: a crash keeps all or none, so a
        // request that needs approval is never left `received`, which a restart would forward.
        if (operation.passcodeUse && this.statements.consumePasscodeUse.run(operation.passcodeUse).changes === 0) return 0;
        const approval = operation.approvalExpiresAt;
        const changes = this.statements.insertRequest.run({ ...operation.request, state: approval ? 'awaiting_approval' : 'received' }).changes;
        if (approval) this.statements.insertApproval.run({ id: operation.request.id, requestedAt: operation.request.receivedAt, expiresAt: approval });
        return changes;
      }
      case 'recordIssued':
        this.statements.markIssued.run(operation.values);
        return this.statements.insertCertificate.run(operation.values).changes;
      case 'recordRefused':
        // Before the refusal is written: a request refused already gave its use back.
        if (operation.refundPasscodeUse) this.statements.refundPasscodeUse.run({ passcodeId: operation.refundPasscodeUse, requestId: operation.values.id });
        return this.statements.upsertRefused.run(operation.values).changes;
      case 'recordRelayed':
        return this.statements.insertRelayed.run(operation.values).changes;
      case 'recordWaiting':
        return this.statements.markWaiting.run(operation.values).changes;
      case 'markForwarding':
        return this.statements.markForwarding.run(operation.values).changes;
      case 'putCached':
        return this.statements.putCached.run(operation.values).changes;
      case 'addPasscode': {
        const changes = this.statements.insertPasscode.run({
          ...operation.values,
          enabled: operation.values.enabled ? 1 : 0,
          registeredValues: Object.keys(operation.values.registeredValues).length > 0 ? JSON.stringify(operation.values.registeredValues) : null,
        }).changes;
        this.statements.passcodeEvent.run({ id: operation.values.id, event: 'created', at: operation.values.createdAt });
        return changes;
      }
      case 'setPasscodeEnabled':
        return this.withPasscodeEvent(
          this.statements.setPasscodeEnabled.run(operation.values).changes,
          operation.values.id,
          operation.values.enabled ? 'enabled' : 'disabled',
        );
      case 'rotatePasscode':
        return this.withPasscodeEvent(this.statements.rotatePasscode.run(operation.values).changes, operation.values.id, 'rotated');
      case 'countRefusal':
        return this.statements.countRefusal.run(operation.values).changes;
      case 'decideApproval':
        return this.settleApproval(operation.values);
      case 'expireApprovals': {
        const due = this.statements.dueApprovals.all(operation.values) as { request_id: string; expires_at: string }[];
        let expired = 0;
        for (const row of due)
          expired += this.settleApproval({
            id: row.request_id,
            state: 'expired',
            at: row.expires_at,
            by: null,
            reason: null,
            requestReason: operation.values.refusal,
          });
        return expired;
      }
      case 'prune':
        return (
          this.statements.pruneRefused.run(operation.values).changes +
          this.statements.pruneBodies.run(operation.values).changes +
          this.statements.pruneRefusalCounts.run(operation.values).changes
        );
    }
  }

  /**
   * Settles one pending approval and its request together: approved, the
   * request is queued for the retry worker (which takes it once, by
   * markForwarding); rejected or expired, the passcode use is given back
   * (before the refusal is written, as recordRefused does) and the request
   * refused. 0 when the approval was not pending, or expired by then.
   */
  private settleApproval(values: ApprovalDecisionValues): number {
    const decided = values.state === 'expired' ? this.statements.expireApproval.run(values).changes : this.statements.decideApproval.run(values).changes;
    if (decided === 0) return 0;
    if (values.state === 'approved') {
      this.statements.queueApproved.run(values);
      return 1;
    }
    const request = this.statements.getRequest.get(values.id) as RequestRow | undefined;
    const principal = request && toRequestRecord(request).principal;
    if (principal?.kind === 'passcode') this.statements.refundPasscodeUse.run({ passcodeId: principal.passcodeId, requestId: values.id });
    this.statements.refuseUnapproved.run(values);
    return 1;
  }

  getApproval(requestId: string): ApprovalWithRequest | undefined {
    const row = this.statements.getApproval.get(requestId) as ApprovalRow | undefined;
    return row && toApprovalWithRequest(row);
  }

  queryApprovals(query: ApprovalQuery): ApprovalWithRequest[] {
    const rows = this.statements.queryApprovals.all({ profile: query.profile ?? null, state: query.state ?? null, limit: query.limit ?? -1 }) as ApprovalRow[];
    return rows.map(toApprovalWithRequest);
  }

  approvalsSince(since?: Date): ApprovalWithRequest[] {
    return (this.statements.approvalsSince.all({ since: since?.toISOString() ?? null }) as ApprovalRow[]).map(toApprovalWithRequest);
  }

  countPendingApprovals(now: Date): Record<string, number> {
    const rows = this.statements.countPendingApprovals.all({ now: now.toISOString() }) as { profile: string; n: number }[];
    return Object.fromEntries(rows.map((row) => [row.profile, row.n]));
  }

  /** Records what a passcode change did, in its transaction, when it changed a passcode; returns the change count. */
  private withPasscodeEvent(changes: number, id: string, event: PasscodeEvent['event']): number {
    if (changes > 0) this.statements.passcodeEvent.run({ id, event, at: new Date().toISOString() });
    return changes;
  }

  passcodeEvents(since?: Date): PasscodeEvent[] {
    return (
      this.statements.passcodeEvents.all({ since: since?.toISOString() ?? null }) as {
        at: string;
        passcode_id: string;
        policy: string;
        event: PasscodeEvent['event'];
      }[]
    ).map((row) => ({ at: row.at, passcodeId: row.passcode_id, policy: row.policy, event: row.event }));
  }

  /** One transaction: every request left in flight is queued again, and marked when its profile forwards upstream. */
  requeueInterrupted(forwardingProfiles: readonly string[], scope: RequeueScope): InterruptedRequest[] {
    const parameters = { forwarding: JSON.stringify(forwardingProfiles), now: scope.now.toISOString(), restartedOwner: scope.restartedOwner ?? null };
    return this.db.transaction(() =>
      (this.statements.requeueInterrupted.all(parameters) as { id: string; profile: string; marked: number }[]).map((row) => ({
        id: row.id,
        profile: row.profile,
        possiblyIssuedTwiceUpstream: row.marked === 1,
      })),
    )();
  }

  /** Store.recordUpstreamFailure: read and step in one transaction (one connection here, so nothing interleaves). */
  recordUpstreamFailure(profile: string, now: Date, delayMs: (failures: number) => number): UpstreamHealthRecord {
    return this.db.transaction(() => {
      const row = this.statements.getUpstreamHealth.get(profile) as UpstreamHealthRow | undefined;
      if (row && now.getTime() < toUpstreamHealthRecord(row).nextProbeAt.getTime()) return toUpstreamHealthRecord(row);
      const failures = (row?.failures ?? 0) + 1;
      const nextProbeAt = new Date(Math.ceil(now.getTime() + delayMs(failures))).toISOString();
      this.statements.putUpstreamFailure.run({ profile, failures, nextProbeAt });
      return toUpstreamHealthRecord({ profile, failures, next_probe_at: nextProbeAt, probing_node: null, probe_expires_at: null });
    })();
  }

  recordUpstreamSuccess(profile: string): boolean {
    return this.statements.deleteUpstreamHealth.run(profile).changes === 1;
  }

  claimUpstreamProbe(profile: string, lease: Lease, now: Date): boolean {
    const values = { profile, owner: lease.owner, now: now.toISOString(), expiresAt: lease.expiresAt.toISOString() };
    return this.statements.claimUpstreamProbe.run(values).changes === 1;
  }

  releaseUpstreamProbe(profile: string, owner: string): void {
    this.statements.releaseUpstreamProbe.run({ profile, owner });
  }

  restartUpstreamProbes(owner: string, now: Date): void {
    this.statements.restartUpstreamProbes.run({ owner, now: now.toISOString() });
  }

  listUpstreamHealth(): UpstreamHealthRecord[] {
    return (this.statements.listUpstreamHealth.all() as UpstreamHealthRow[]).map(toUpstreamHealthRecord);
  }

  getNode(name: string): NodeRecord | undefined {
    const row = this.statements.getNode.get(name) as NodeRow | undefined;
    return row && toNodeRecord(row);
  }

  claimNode(node: NodeRecord, replacing: string | undefined): boolean {
    // The fields the statements name: a new holder is never stopped.
    const { name, instance, host, machineId, pid, version, startedAt, lastSeenAt } = node;
    const values = { name, instance, host, machineId, pid, version, startedAt, lastSeenAt };
    const claimed = replacing === undefined ? this.statements.insertNode.run(values) : this.statements.replaceNode.run({ ...values, replacing });
    return claimed.changes === 1;
  }

  nodeSeen(name: string, instance: string, now: Date): boolean {
    return this.statements.nodeSeen.run({ name, instance, now: now.toISOString() }).changes === 1;
  }

  nodeStopped(name: string, instance: string, now: Date): void {
    this.statements.nodeStopped.run({ name, instance, now: now.toISOString() });
  }

  listNodes(): NodeRecord[] {
    return (this.statements.listNodes.all() as NodeRow[]).map(toNodeRecord);
  }

  countWaiting(): Record<string, number> {
    const rows = this.statements.countWaiting.all() as { state: string; n: number }[];
    return Object.fromEntries(rows.map((row) => [row.state, row.n]));
  }

  listWaiting(dueBy: Date, limit: number): WaitingRequest[] {
    return (this.statements.listWaiting.all({ dueBy: dueBy.toISOString(), limit }) as RequestRow[]).map(toRequestRecord);
  }

  findByCsr(profile: string, operation: string, csrSha256: string): FoundRequest | undefined {
    const row = this.statements.findByCsr.get(profile, operation, csrSha256) as (RequestRow & Partial<ApprovalColumns>) | undefined;
    return row && { ...toRequestRecord(row), approval: row.approval_state ? toApprovalRecord(row as RequestRow & ApprovalColumns) : null };
  }

  getIssuedCertificate(requestId: string): Buffer | undefined {
    return (this.statements.getIssuedCertificate.get(requestId) as { der: Buffer } | undefined)?.der;
  }

  refusalCounts(limit: number): RefusalCount[] {
    return (this.statements.refusalCounts.all(limit) as RefusalCountRow[]).map(toRefusalCount);
  }

  refusalCountsSince(since?: Date): RefusalCount[] {
    return (this.statements.refusalCountsSince.all({ since: since?.toISOString() ?? null }) as RefusalCountRow[]).map(toRefusalCount);
  }

  queryRequests(query: RequestQuery): RequestRecord[] {
    const statement = query.order === 'oldest' ? this.statements.queryRequestsOldest : this.statements.queryRequestsNewest;
    const rows = statement.all({
      since: query.since?.toISOString() ?? null,
      profile: query.profile ?? null,
      state: query.state ?? null,
      limit: query.limit ?? -1,
    }) as RequestRow[];
    return rows.map(toRequestRecord);
  }

  getRequest(id: string): RequestRecord | undefined {
    const row = this.statements.getRequest.get(id) as RequestRow | undefined;
    return row && toRequestRecord(row);
  }

  queryCertificates(query: CertificateQuery): CertificateRecord[] {
    const rows = this.statements.queryCertificates.all({
      from: query.notAfterFrom?.toISOString() ?? null,
      to: query.notAfterTo?.toISOString() ?? null,
      profile: query.profile ?? null,
      limit: query.limit ?? -1,
    }) as CertificateRow[];
    return rows.map(toCertificateRecord);
  }

  getCertificate(serial: string): CertificateRecord | undefined {
    const row = this.statements.getCertificate.get(serial) as CertificateRow | undefined;
    return row && toCertificateRecord(row);
  }

  /**
   * integrity_check reads every page and index (https://sqlite.org/pragma.html#pragma_integrity_check);
   * it does not check foreign keys, so foreign_key_check adds a certificate whose request is gone.
   */
  check(): string[] {
    const integrity = (this.db.pragma('integrity_check') as { integrity_check: string }[]).map((row) => row.integrity_check).filter((line) => line !== 'ok');
    const foreignKeys = (this.db.pragma('foreign_key_check') as { table: string; rowid: number; parent: string }[]).map(
      (row) => `${row.table} row ${row.rowid}: no ${row.parent} row it refers to`,
    );
    return [...integrity, ...foreignKeys];
  }

  stats(): Omit<StoreStats, 'bytes'> {
    return this.statements.stats.get() as Omit<StoreStats, 'bytes'>;
  }

  findIssuedBySerial(serial: string): { profile: string; der: Buffer } | undefined {
    return this.statements.findIssuedBySerial.get(serial) as { profile: string; der: Buffer } | undefined;
  }

  listRequests(limit: number): RequestRecord[] {
    return (this.statements.listRequests.all(limit) as RequestRow[]).map(toRequestRecord);
  }

  getCached(key: string): Buffer | undefined {
    return (this.statements.getCached.get(key) as { value: Buffer } | undefined)?.value;
  }

  getPasscode(id: string): PasscodeRecord | undefined {
    const row = this.statements.getPasscode.get(id) as PasscodeRow | undefined;
    return row && toPasscodeRecord(row);
  }

  findPasscode(policy: string, hash: string): PasscodeRecord | undefined {
    const row = this.statements.findPasscode.get(policy, hash) as PasscodeRow | undefined;
    return row && toPasscodeRecord(row);
  }

  listPasscodes(policy?: string): PasscodeRecord[] {
    return (this.statements.listPasscodes.all({ policy: policy ?? null }) as PasscodeRow[]).map(toPasscodeRecord);
  }

  close(): void {
    this.db.close();
  }
}

function prepareStatements(db: Database.Database) {
  return {
    insertRequest: db.prepare(
      `INSERT INTO requests (id, received_at, profile, peer_address, principal, operation, csr, csr_sha256, client_certificate, state, lease_owner, lease_expires_at)
       VALUES (@id, @receivedAt, @profile, @peerAddress, @principal, @operation, @csr, @csrSha256, @clientCertificate, @state, @leaseOwner, @leaseExpiresAt)`,
    ),
    insertApproval: db.prepare(`INSERT INTO approvals (request_id, state, requested_at, expires_at) VALUES (@id, 'pending', @requestedAt, @expiresAt)`),
    decideApproval: db.prepare(
      `UPDATE approvals SET state = @state, decided_at = @at, decided_by = @by, reason = @reason
       WHERE request_id = @id AND state = 'pending' AND expires_at > @at`,
    ),
    expireApproval: db.prepare(
      `UPDATE approvals SET state = 'expired', decided_at = expires_at WHERE request_id = @id AND state = 'pending' AND expires_at <= @at`,
    ),
    dueApprovals: db.prepare(`SELECT request_id, expires_at FROM approvals WHERE state = 'pending' AND expires_at <= @now ORDER BY expires_at`),
    // Due now: the retry worker takes it at its next scan, as any queued request.
    queueApproved: db.prepare(
      `UPDATE requests SET state = 'queued', status = 202, reason = @requestReason, next_attempt_at = @at WHERE id = @id AND state = 'awaiting_approval'`,
    ),
    refuseUnapproved: db.prepare(
      `UPDATE requests SET state = 'refused', status = 403, reason = @requestReason, next_attempt_at = NULL, completed_at = @at
       WHERE id = @id AND state = 'awaiting_approval'`,
    ),
    getApproval: db.prepare(`${APPROVALS_WITH_REQUESTS} WHERE a.request_id = ?`),
    queryApprovals: db.prepare(
      `${APPROVALS_WITH_REQUESTS} WHERE (@profile IS NULL OR r.profile = @profile) AND (@state IS NULL OR a.state = @state)
       ORDER BY a.requested_at DESC, r.rowid DESC LIMIT @limit`,
    ),
    approvalsSince: db.prepare(
      `${APPROVALS_WITH_REQUESTS} WHERE @since IS NULL OR a.requested_at >= @since OR a.decided_at >= @since ORDER BY a.requested_at, r.rowid`,
    ),
    countPendingApprovals: db.prepare(
      `SELECT r.profile, count(*) AS n FROM approvals a JOIN requests r ON r.id = a.request_id
       WHERE a.state = 'pending' AND a.expires_at > @now GROUP BY r.profile`,
    ),
    markIssued: db.prepare(
      `UPDATE requests SET state = 'issued', status = 200, reason = NULL, next_attempt_at = NULL, completed_at = @completedAt,
         serial = @serial, subject = @subject, not_after = @notAfter, lease_owner = NULL, lease_expires_at = NULL
       WHERE id = @id`,
    ),
    insertCertificate: db.prepare(
      `INSERT INTO certificates (serial, request_id, profile, subject, not_before, not_after, der)
       SELECT @serial, id, profile, @subject, @notBefore, @notAfter, @der FROM requests WHERE id = @id`,
    ),
    upsertRefused: db.prepare(
      `INSERT INTO requests (id, received_at, profile, peer_address, principal, operation, csr, csr_sha256, client_certificate, state, status, reason, completed_at)
       VALUES (@id, @receivedAt, @profile, @peerAddress, @principal, @operation, @csr, @csrSha256, @clientCertificate, 'refused', @status, @reason, @completedAt)
       ON CONFLICT (id) DO UPDATE SET state = 'refused', status = @status, reason = @reason, next_attempt_at = NULL, completed_at = @completedAt,
         lease_owner = NULL, lease_expires_at = NULL`,
    ),
    insertRelayed: db.prepare(
      `INSERT INTO requests (id, received_at, profile, peer_address, principal, operation, csr, csr_sha256, client_certificate, state, status, reason, completed_at)
       VALUES (@id, @receivedAt, @profile, @peerAddress, @principal, @operation, @csr, @csrSha256, @clientCertificate,
         CASE WHEN @status BETWEEN 200 AND 299 THEN 'issued' ELSE 'refused' END, @status, @reason, @completedAt)`,
    ),
    markWaiting: db.prepare(
      `UPDATE requests SET state = @state, status = 202, reason = @reason, attempts = @attempts, next_attempt_at = @nextAttemptAt,
         possibly_issued_twice_upstream = max(possibly_issued_twice_upstream, @outcomeUnknown), lease_owner = NULL, lease_expires_at = NULL
       WHERE id = @id AND state IN ('received', 'queued', 'pending')`,
    ),
    getUpstreamHealth: db.prepare(`SELECT * FROM upstream_health WHERE profile = ?`),
    listUpstreamHealth: db.prepare(`SELECT * FROM upstream_health ORDER BY profile`),
    getNode: db.prepare(`SELECT * FROM nodes WHERE name = ?`),
    insertNode: db.prepare(
      `INSERT INTO nodes (name, instance, host, machine_id, pid, version, started_at, last_seen_at)
       VALUES (@name, @instance, @host, @machineId, @pid, @version, @startedAt, @lastSeenAt) ON CONFLICT (name) DO NOTHING`,
    ),
    replaceNode: db.prepare(
      `UPDATE nodes SET instance = @instance, host = @host, machine_id = @machineId, pid = @pid, version = @version,
         started_at = @startedAt, last_seen_at = @lastSeenAt, stopped_at = NULL
       WHERE name = @name AND instance = @replacing`,
    ),
    nodeSeen: db.prepare(`UPDATE nodes SET last_seen_at = @now WHERE name = @name AND instance = @instance`),
    nodeStopped: db.prepare(`UPDATE nodes SET stopped_at = @now, last_seen_at = @now WHERE name = @name AND instance = @instance`),
    listNodes: db.prepare(`SELECT * FROM nodes ORDER BY name`),
    putUpstreamFailure: db.prepare(
      `INSERT INTO upstream_health (profile, failures, next_probe_at) VALUES (@profile, @failures, @nextProbeAt)
       ON CONFLICT (profile) DO UPDATE SET failures = excluded.failures, next_probe_at = excluded.next_probe_at,
         probing_node = NULL, probe_started_at = NULL, probe_expires_at = NULL`,
    ),
    restartUpstreamProbes: db.prepare(
      `UPDATE upstream_health SET next_probe_at = min(next_probe_at, @now),
         probing_node = CASE probing_node WHEN @owner THEN NULL ELSE probing_node END,
         probe_started_at = CASE probing_node WHEN @owner THEN NULL ELSE probe_started_at END,
         probe_expires_at = CASE probing_node WHEN @owner THEN NULL ELSE probe_expires_at END`,
    ),
    deleteUpstreamHealth: db.prepare(`DELETE FROM upstream_health WHERE profile = ?`),
    // The probe is due and nobody holds it (or the holder's claim ran out): the one UPDATE that changes the row wins.
    claimUpstreamProbe: db.prepare(
      `UPDATE upstream_health SET probing_node = @owner, probe_started_at = @now, probe_expires_at = @expiresAt
       WHERE profile = @profile AND next_probe_at <= @now AND (probing_node IS NULL OR probe_expires_at <= @now)`,
    ),
    releaseUpstreamProbe: db.prepare(
      `UPDATE upstream_health SET probing_node = NULL, probe_started_at = NULL, probe_expires_at = NULL WHERE profile = @profile AND probing_node = @owner`,
    ),
    // A queued request goes in flight; a due pending one stays pending, held: either way one node has it.
    markForwarding: db.prepare(
      `UPDATE requests SET state = CASE state WHEN 'queued' THEN 'received' ELSE state END, lease_owner = @owner, lease_expires_at = @expiresAt
       WHERE id = @id AND (state = 'queued'
         OR (state = 'pending' AND next_attempt_at <= @now AND (lease_expires_at IS NULL OR lease_expires_at <= @now)))`,
    ),
    requeueInterrupted: db.prepare(
      `UPDATE requests SET state = 'queued', next_attempt_at = received_at, lease_owner = NULL, lease_expires_at = NULL,
         possibly_issued_twice_upstream = max(possibly_issued_twice_upstream, profile IN (SELECT value FROM json_each(@forwarding)))
       WHERE state = 'received' AND (lease_expires_at IS NULL OR lease_expires_at <= @now OR lease_owner = @restartedOwner)
       RETURNING id, profile, profile IN (SELECT value FROM json_each(@forwarding)) AS marked`,
    ),
    countWaiting: db.prepare(`SELECT state, count(*) AS n FROM requests WHERE state IN ('received', 'queued', 'pending') GROUP BY state`),
    listWaiting: db.prepare(
      `SELECT * FROM requests
       WHERE state = 'queued' OR (state = 'pending' AND next_attempt_at <= @dueBy AND (lease_expires_at IS NULL OR lease_expires_at <= @dueBy))
       ORDER BY received_at LIMIT @limit`,
    ),
    // A rejected or expired approval answers the device's retries of that CSR too (403 with why), as a decision.
    findByCsr: db.prepare(
      `SELECT r.*, ${APPROVAL_COLUMNS} FROM requests r LEFT JOIN approvals a ON a.request_id = r.id
       WHERE r.profile = ? AND r.operation = ? AND r.csr_sha256 = ?
         AND (r.state IN ('received', 'queued', 'pending', 'awaiting_approval', 'issued') OR a.state IN ('rejected', 'expired'))
       ORDER BY r.received_at DESC, r.rowid DESC LIMIT 1`,
    ),
    getIssuedCertificate: db.prepare(`SELECT der FROM certificates WHERE request_id = ?`),
    findIssuedBySerial: db.prepare(`SELECT profile, der FROM certificates WHERE serial = ?`),
    listRequests: db.prepare(`SELECT * FROM requests ORDER BY received_at DESC, rowid DESC LIMIT ?`),
    getCached: db.prepare(`SELECT value FROM cache WHERE key = ?`),
    putCached: db.prepare(
      `INSERT INTO cache (key, value, updated_at) VALUES (@key, @value, @updatedAt)
       ON CONFLICT (key) DO UPDATE SET value = @value, updated_at = @updatedAt`,
    ),
    insertPasscode: db.prepare(
      `INSERT INTO passcodes (id, policy, username, hash, description, created_at, enabled, max_uses, uses, expires_at, registered_values)
       VALUES (@id, @policy, @username, @hash, @description, @createdAt, @enabled, @maxUses, @uses, @expiresAt, @registeredValues)`,
    ),
    listPasscodes: db.prepare(`SELECT * FROM passcodes WHERE @policy IS NULL OR policy = @policy ORDER BY policy, created_at`),
    setPasscodeEnabled: db.prepare(`UPDATE passcodes SET enabled = @enabled WHERE id = @id`),
    rotatePasscode: db.prepare(`UPDATE passcodes SET hash = @hash WHERE id = @id`),
    // One statement: the check and the count cannot be separated by another request.
    consumePasscodeUse: db.prepare(
      `UPDATE passcodes SET uses = uses + 1
       WHERE id = @id AND enabled = 1 AND (max_uses IS NULL OR uses < max_uses) AND (expires_at IS NULL OR expires_at > @now)`,
    ),
    countRefusal: db.prepare(
      `INSERT INTO refusal_counts (address, profile, operation, code, hour, status, last_reason, count, first_at, last_at)
       VALUES (@address, @profile, @operation, @code, @hour, @status, @reason, 1, @at, @at)
       ON CONFLICT (address, profile, operation, code, hour) DO UPDATE SET count = count + 1, last_reason = @reason, last_at = @at`,
    ),
    // Retention: refused requests go; finished ones keep their row (the issued-certificate index and retries need
    // it) but lose the CSR and client certificate bodies; nothing waiting is touched.
    pruneRefused: db.prepare(`DELETE FROM requests WHERE state = 'refused' AND completed_at < @before`),
    pruneBodies: db.prepare(
      `UPDATE requests SET csr = NULL, client_certificate = NULL
       WHERE state = 'issued' AND completed_at < @before AND (csr IS NOT NULL OR client_certificate IS NOT NULL)`,
    ),
    pruneRefusalCounts: db.prepare(`DELETE FROM refusal_counts WHERE last_at < @before`),
    refusalCounts: db.prepare(`SELECT * FROM refusal_counts ORDER BY last_at DESC LIMIT ?`),
    refusalCountsSince: db.prepare(`SELECT * FROM refusal_counts WHERE @since IS NULL OR last_at >= @since ORDER BY first_at, rowid`),
    // A negative LIMIT is no limit in SQLite.
    queryRequestsNewest: db.prepare(
      `SELECT * FROM requests
       WHERE (@since IS NULL OR received_at >= @since) AND (@profile IS NULL OR profile = @profile) AND (@state IS NULL OR state = @state)
       ORDER BY received_at DESC, rowid DESC LIMIT @limit`,
    ),
    queryRequestsOldest: db.prepare(
      `SELECT * FROM requests
       WHERE (@since IS NULL OR received_at >= @since) AND (@profile IS NULL OR profile = @profile) AND (@state IS NULL OR state = @state)
       ORDER BY received_at, rowid LIMIT @limit`,
    ),
    getRequest: db.prepare(`SELECT * FROM requests WHERE id = ?`),
    queryCertificates: db.prepare(
      `SELECT * FROM certificates
       WHERE (@from IS NULL OR not_after >= @from) AND (@to IS NULL OR not_after <= @to) AND (@profile IS NULL OR profile = @profile)
       ORDER BY not_after, serial LIMIT @limit`,
    ),
    getCertificate: db.prepare(`SELECT * FROM certificates WHERE serial = ?`),
    passcodeEvent: db.prepare(`INSERT INTO passcode_events (at, passcode_id, policy, event) SELECT @at, id, policy, @event FROM passcodes WHERE id = @id`),
    passcodeEvents: db.prepare(`SELECT * FROM passcode_events WHERE @since IS NULL OR at >= @since ORDER BY at, rowid`),
    stats: db.prepare(
      `SELECT (SELECT count(*) FROM requests) AS requests,
              (SELECT count(*) FROM requests WHERE state = 'refused') AS refused,
              (SELECT count(*) FROM requests WHERE state IN ('received', 'queued', 'pending', 'awaiting_approval')) AS waiting,
              (SELECT count(*) FROM certificates) AS certificates,
              (SELECT count(*) FROM refusal_counts) AS refusal_rows,
              (SELECT coalesce(sum(count), 0) FROM refusal_counts) AS refusals_counted,
              (SELECT count(*) FROM passcodes) AS passcodes`,
    ),
    refundPasscodeUse: db.prepare(
      `UPDATE passcodes SET uses = uses - 1
       WHERE id = @passcodeId AND uses > 0 AND EXISTS (SELECT 1 FROM requests WHERE id = @requestId AND state <> 'refused')`,
    ),
    findPasscode: db.prepare(`SELECT * FROM passcodes WHERE policy = ? AND hash = ? AND enabled = 1`),
    getPasscode: db.prepare(`SELECT * FROM passcodes WHERE id = ?`),
  };
}
