import pg from 'pg';
import { POSTGRES_MIGRATIONS } from './postgres-schema.js';
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
import type {
  ApprovalDecision,
  ApprovalQuery,
  ApprovalWithRequest,
  FoundRequest,
  CertificateQuery,
  CertificateRecord,
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

/** How est-ra reaches PostgreSQL: node-postgres's own connection settings, already resolved (the password read from its file or variable). */
export type PostgresConnection = pg.PoolConfig;

/**
 * Any key of this value serialises migrations: two nodes started at once
 * must not both create the tables. pg_advisory_xact_lock takes a bigint;
 * this one is "est-ra" in ASCII.
 */
const MIGRATION_LOCK = 0x6573742d7261n;

/** PostgreSQL's SQLSTATE for "cached plan must not change result type" (feature_not_supported). */
const CACHED_PLAN_CHANGED = '0A000';

/**
 * The shared store of several est-ra nodes: the same Store as SQLite, on
 * PostgreSQL. Every write is one statement or one transaction, so what one
 * node does is either wholly visible to the others or not at all; a check
 * and its count (a passcode's last use) are one UPDATE, which PostgreSQL
 * serialises on the row, so two nodes never both take it.
 */
export class PostgresStore implements Store {
  /** Bumped when PostgreSQL refuses a prepared statement whose table changed under it (see `prepared`). */
  private statementGeneration = 0;

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects and applies the migrations this version knows, under a lock shared by every node. */
  static async open(connection: PostgresConnection, options: { readonly readOnly?: boolean } = {}): Promise<PostgresStore> {
    // Read-only: every transaction of every connection is, so PostgreSQL itself refuses a write.
    const pool = new pg.Pool({ max: 10, ...connection, ...(options.readOnly ? { options: '-c default_transaction_read_only=on' } : {}) });
    // An idle client that loses its connection (the server restarted) is dropped by the pool; the error must not kill the process.
    pool.on('error', () => {});
    try {
      if (options.readOnly) {
        const status = await PostgresStore.migrationStatus(connection);
        if (status.applied !== status.known)
          throw new Error(`the database has store schema version ${status.applied}, this est-ra ${status.known}: run est-ra migrate first`);
      } else await migrate(pool);
    } catch (err) {
      await pool.end();
      throw err;
    }
    return new PostgresStore(pool);
  }

  /** Which migrations the database has and which this version would apply, changing nothing. */
  static async migrationStatus(connection: PostgresConnection): Promise<MigrationStatus> {
    const client = new pg.Client(connection);
    await client.connect();
    try {
      return { applied: await appliedVersion(client), known: POSTGRES_MIGRATIONS.length };
    } finally {
      await client.end();
    }
  }

  /**
   * A statement every enrollment (or every refusal) runs, as a named prepared
   * statement: PostgreSQL parses and plans it once per connection rather than
   * on every call, which cuts its CPU per statement to between a third and a
   * sixth, and the client sends less. A newer node's migration may change a
   * table under a running node; PostgreSQL then refuses a prepared `SELECT *`
   * on every connection that prepared it ("cached plan must not change result
   * type", SQLSTATE 0A000). The names carry a generation, bumped on that
   * error, so the statement is prepared afresh under a new name and run again.
   */
  private async prepared<R extends pg.QueryResultRow = pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    const generation = this.statementGeneration;
    try {
      return await this.pool.query<R>({ name: `${name}/${generation}`, text, values });
    } catch (err) {
      if ((err as { code?: string }).code !== CACHED_PLAN_CHANGED) throw err;
      if (this.statementGeneration === generation) this.statementGeneration++;
      return this.pool.query<R>({ name: `${name}/${this.statementGeneration}`, text, values });
    }
  }

  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async recordRequest(
    request: NewRequest,
    passcodeUse?: { readonly passcodeId: string; readonly now: Date },
    approval?: { readonly expiresAt: Date },
  ): Promise<boolean> {
    const values = [...requestParameters(request), approval ? 'awaiting_approval' : 'received', request.lease?.owner ?? null, request.lease?.expiresAt ?? null];
    if (!approval) {
      // The common case in one statement, one round trip: the use is taken and the request inserted together, or neither.
      const result = await this.prepared(
        passcodeUse ? 'record-request-with-passcode-use' : 'record-request',
        passcodeUse
          ? `WITH used AS (
               UPDATE passcodes SET uses = uses + 1
               WHERE id = $13 AND enabled AND (max_uses IS NULL OR uses < max_uses) AND (expires_at IS NULL OR expires_at > $14)
               RETURNING id)
             INSERT INTO requests (id, received_at, profile, peer_address, principal, operation, csr, csr_sha256, client_certificate, state, lease_owner, lease_expires_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM used`
          : `INSERT INTO requests (id, received_at, profile, peer_address, principal, operation, csr, csr_sha256, client_certificate, state, lease_owner, lease_expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        passcodeUse ? [...values, passcodeUse.passcodeId, passcodeUse.now] : values,
      );
      return result.rowCount === 1;
    }
    // The passcode use, the request and its approval in one transaction: all or none, so a request that needs
    // approval is never left `received`, which a restart would forward.
    return this.transaction(async (client) => {
      if (passcodeUse) {
        // One statement: the check and the count cannot be separated by another node's request.
        const used = await client.query(
          `UPDATE passcodes SET uses = uses + 1
           WHERE id = $1 AND enabled AND (max_uses IS NULL OR uses < max_uses) AND (expires_at IS NULL OR expires_at > $2)`,
          [passcodeUse.passcodeId, passcodeUse.now],
        );
        if (used.rowCount !== 1) return false;
      }
      await client.query(
        `INSERT INTO requests (id, received_at, profile, peer_address, principal, operation, csr, csr_sha256, client_certificate, state, lease_owner, lease_expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        values,
      );
      await client.query(`INSERT INTO approvals (request_id, state, requested_at, expires_at) VALUES ($1, 'pending', $2, $3)`, [
        request.id,
        request.receivedAt,
        approval.expiresAt,
      ]);
      return true;
    });
  }

  async recordRelayed(request: NewRequest, completedAt: Date, status: number, reason: string): Promise<void> {
    await this.prepared(
      'record-relayed',
      `INSERT INTO requests (id, received_at, profile, peer_address, principal, operation, csr, csr_sha256, client_certificate, state, status, reason, completed_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $10::integer BETWEEN 200 AND 299 THEN 'issued' ELSE 'refused' END, $10, $11, $12)`,
      [...requestParameters(request), status, reason, completedAt],
    );
  }

  async recordIssued(requestId: string, completedAt: Date, outcome: IssuedOutcome): Promise<void> {
    await this.prepared(
      'record-issued',
      `WITH issued AS (
         UPDATE requests SET state = 'issued', status = 200, reason = NULL, next_attempt_at = NULL, completed_at = $2,
           serial = $3, subject = $4, not_after = $6, lease_owner = NULL, lease_expires_at = NULL
         WHERE id = $1 RETURNING id, profile)
       INSERT INTO certificates (serial, request_id, profile, subject, not_before, not_after, der)
       SELECT $3, id, profile, $4, $5, $6, $7 FROM issued`,
      [requestId, completedAt, outcome.serial, outcome.subject, outcome.notBefore, outcome.notAfter, outcome.certificate],
    );
  }

  async recordRefused(request: NewRequest, completedAt: Date, status: number, reason: string, options: RefusalOptions = {}): Promise<void> {
    await this.transaction(async (client) => {
      if (options.refundPasscodeUse) {
        // The request's row is locked first: a second refusal of it (another node) waits, then sees it refused and refunds nothing.
        const earlier = await client.query<{ state: string }>(`SELECT state FROM requests WHERE id = $1 FOR UPDATE`, [request.id]);
        if (earlier.rows[0] && earlier.rows[0].state !== 'refused')
          await client.query(`UPDATE passcodes SET uses = uses - 1 WHERE id = $1 AND uses > 0`, [options.refundPasscodeUse]);
      }
      await client.query(
        `INSERT INTO requests (id, received_at, profile, peer_address, principal, operation, csr, csr_sha256, client_certificate, state, status, reason, completed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'refused', $10, $11, $12)
         ON CONFLICT (id) DO UPDATE SET state = 'refused', status = $10, reason = $11, next_attempt_at = NULL, completed_at = $12,
           lease_owner = NULL, lease_expires_at = NULL`,
        [...requestParameters(request), status, reason, completedAt],
      );
    });
  }

  async countRefusal(refusal: RefusalEvent): Promise<void> {
    const at = refusal.at;
    await this.prepared(
      'count-refusal',
      `INSERT INTO refusal_counts (address, profile, operation, code, hour, status, last_reason, count, first_at, last_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)
       ON CONFLICT (address, profile, operation, code, hour)
       DO UPDATE SET count = refusal_counts.count + 1, last_reason = $7, last_at = $8`,
      [refusal.address, refusal.profile, refusal.operation, refusal.code, at.toISOString().slice(0, 13), refusal.status, refusal.reason, at],
    );
  }

  async refusalCounts(limit: number): Promise<RefusalCount[]> {
    const result = await this.pool.query<RefusalCountRow>(`SELECT * FROM refusal_counts ORDER BY last_at DESC, seq DESC LIMIT $1`, [limit]);
    return result.rows.map(toRefusalCount);
  }

  async refusalCountsSince(since?: Date): Promise<RefusalCount[]> {
    const result = await this.pool.query<RefusalCountRow>(
      `SELECT * FROM refusal_counts WHERE $1::timestamptz IS NULL OR last_at >= $1 ORDER BY first_at, seq`,
      [since ?? null],
    );
    return result.rows.map(toRefusalCount);
  }

  async prune(before: Date): Promise<number> {
    return this.transaction(async (client) => {
      // Retention as in the SQLite store: refused requests go; issued ones keep their row but lose the bodies; nothing waiting is touched.
      const refused = await client.query(`DELETE FROM requests WHERE state = 'refused' AND completed_at < $1`, [before]);
      const bodies = await client.query(
        `UPDATE requests SET csr = NULL, client_certificate = NULL
         WHERE state = 'issued' AND completed_at < $1 AND (csr IS NOT NULL OR client_certificate IS NOT NULL)`,
        [before],
      );
      const counts = await client.query(`DELETE FROM refusal_counts WHERE last_at < $1`, [before]);
      return (refused.rowCount ?? 0) + (bodies.rowCount ?? 0) + (counts.rowCount ?? 0);
    });
  }

  async stats(): Promise<StoreStats> {
    const result = await this.pool.query<Record<keyof StoreStats, string>>(
      `SELECT (SELECT count(*) FROM requests) AS requests,
              (SELECT count(*) FROM requests WHERE state = 'refused') AS refused,
              (SELECT count(*) FROM requests WHERE state IN ('received', 'queued', 'pending', 'awaiting_approval')) AS waiting,
              (SELECT count(*) FROM certificates) AS certificates,
              (SELECT count(*) FROM refusal_counts) AS refusal_rows,
              (SELECT coalesce(sum(count), 0) FROM refusal_counts) AS refusals_counted,
              (SELECT count(*) FROM passcodes) AS passcodes,
              (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
                 WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace) AS bytes`,
    );
    const row = result.rows[0]!;
    // count(*) is bigint, which node-postgres returns as text.
    return Object.fromEntries(Object.entries(row).map(([key, value]) => [key, Number(value)])) as unknown as StoreStats;
  }

  async recordWaiting(
    requestId: string,
    state: 'queued' | 'pending',
    nextAttemptAt: Date,
    attempts: number,
    reason: string,
    outcomeUnknown = false,
  ): Promise<void> {
    await this.pool.query(
      `UPDATE requests SET state = $2, status = 202, reason = $5, attempts = $4, next_attempt_at = $3,
         possibly_issued_twice_upstream = possibly_issued_twice_upstream OR $6, lease_owner = NULL, lease_expires_at = NULL
       WHERE id = $1 AND state IN ('received', 'queued', 'pending')`,
      [requestId, state, nextAttemptAt, attempts, reason, outcomeUnknown],
    );
  }

  async markForwarding(requestId: string, lease: Lease, now: Date): Promise<boolean> {
    // A queued request goes in flight; a due pending one stays pending, held. The row lock makes one node the taker.
    const result = await this.prepared(
      'mark-forwarding',
      `UPDATE requests SET state = CASE state WHEN 'queued' THEN 'received' ELSE state END, lease_owner = $2, lease_expires_at = $3
       WHERE id = $1 AND (state = 'queued'
         OR (state = 'pending' AND next_attempt_at <= $4 AND (lease_expires_at IS NULL OR lease_expires_at <= $4)))`,
      [requestId, lease.owner, lease.expiresAt, now],
    );
    return result.rowCount === 1;
  }

  async requeueInterrupted(forwardingProfiles: readonly string[], scope: RequeueScope): Promise<InterruptedRequest[]> {
    const result = await this.pool.query<{ id: string; profile: string; marked: boolean }>(
      `UPDATE requests SET state = 'queued', next_attempt_at = received_at, lease_owner = NULL, lease_expires_at = NULL,
         possibly_issued_twice_upstream = possibly_issued_twice_upstream OR profile = ANY($1)
       WHERE state = 'received' AND (lease_expires_at IS NULL OR lease_expires_at <= $2 OR lease_owner = $3)
       RETURNING id, profile, profile = ANY($1) AS marked`,
      [forwardingProfiles, scope.now, scope.restartedOwner ?? null],
    );
    return result.rows.map((row) => ({ id: row.id, profile: row.profile, possiblyIssuedTwiceUpstream: row.marked }));
  }

  async recordUpstreamFailure(profile: string, now: Date, delayMs: (failures: number) => number): Promise<UpstreamHealthRecord> {
    return this.transaction(async (client) => {
      // The row exists before it is locked, so two nodes failing at once take turns on it rather than both inserting.
      await client.query(`INSERT INTO upstream_health (profile, failures, next_probe_at) VALUES ($1, 0, '-infinity') ON CONFLICT DO NOTHING`, [profile]);
      const current = await client.query<UpstreamHealthRow>(`SELECT * FROM upstream_health WHERE profile = $1 FOR UPDATE`, [profile]);
      const row = current.rows[0]!;
      if (row.failures > 0 && now < row.next_probe_at) return toUpstreamHealthRecord(row);
      const failures = row.failures + 1;
      const nextProbeAt = new Date(Math.ceil(now.getTime() + delayMs(failures)));
      const updated = await client.query<UpstreamHealthRow>(
        `UPDATE upstream_health SET failures = $2, next_probe_at = $3, probing_node = NULL, probe_started_at = NULL, probe_expires_at = NULL
         WHERE profile = $1 RETURNING *`,
        [profile, failures, nextProbeAt],
      );
      return toUpstreamHealthRecord(updated.rows[0]!);
    });
  }

  async recordUpstreamSuccess(profile: string): Promise<boolean> {
    return (await this.pool.query(`DELETE FROM upstream_health WHERE profile = $1`, [profile])).rowCount === 1;
  }

  async claimUpstreamProbe(profile: string, lease: Lease, now: Date): Promise<boolean> {
    // The row lock makes one node the prober; the second UPDATE re-checks the WHERE after the first commits and finds it held.
    const result = await this.pool.query(
      `UPDATE upstream_health SET probing_node = $2, probe_started_at = $3, probe_expires_at = $4
       WHERE profile = $1 AND failures > 0 AND next_probe_at <= $3 AND (probing_node IS NULL OR probe_expires_at <= $3)`,
      [profile, lease.owner, now, lease.expiresAt],
    );
    return result.rowCount === 1;
  }

  async releaseUpstreamProbe(profile: string, owner: string): Promise<void> {
    await this.pool.query(
      `UPDATE upstream_health SET probing_node = NULL, probe_started_at = NULL, probe_expires_at = NULL WHERE profile = $1 AND probing_node = $2`,
      [profile, owner],
    );
  }

  async restartUpstreamProbes(owner: string, now: Date): Promise<void> {
    await this.pool.query(
      `UPDATE upstream_health SET next_probe_at = LEAST(next_probe_at, $2),
         probing_node = CASE WHEN probing_node = $1 THEN NULL ELSE probing_node END,
         probe_started_at = CASE WHEN probing_node = $1 THEN NULL ELSE probe_started_at END,
         probe_expires_at = CASE WHEN probing_node = $1 THEN NULL ELSE probe_expires_at END
       WHERE failures > 0`,
      [owner, now],
    );
  }

  async listUpstreamHealth(): Promise<UpstreamHealthRecord[]> {
    const result = await this.pool.query<UpstreamHealthRow>(`SELECT * FROM upstream_health WHERE failures > 0 ORDER BY profile`);
    return result.rows.map(toUpstreamHealthRecord);
  }

  async getNode(name: string): Promise<NodeRecord | undefined> {
    const result = await this.pool.query<NodeRow>(`SELECT * FROM nodes WHERE name = $1`, [name]);
    return result.rows[0] && toNodeRecord(result.rows[0]);
  }

  async claimNode(node: NodeRecord, replacing: string | undefined): Promise<boolean> {
    const values = [node.name, node.instance, node.host, node.machineId, node.pid, node.version, node.startedAt, node.lastSeenAt];
    const result =
      replacing === undefined
        ? await this.pool.query(
            `INSERT INTO nodes (name, instance, host, machine_id, pid, version, started_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING`,
            values,
          )
        : await this.pool.query(
            `UPDATE nodes SET instance = $2, host = $3, machine_id = $4, pid = $5, version = $6, started_at = $7, last_seen_at = $8, stopped_at = NULL
             WHERE name = $1 AND instance = $9`,
            [...values, replacing],
          );
    return result.rowCount === 1;
  }

  async nodeSeen(name: string, instance: string, now: Date): Promise<boolean> {
    return (await this.pool.query(`UPDATE nodes SET last_seen_at = $3 WHERE name = $1 AND instance = $2`, [name, instance, now])).rowCount === 1;
  }

  async nodeStopped(name: string, instance: string, now: Date): Promise<void> {
    await this.pool.query(`UPDATE nodes SET stopped_at = $3, last_seen_at = $3 WHERE name = $1 AND instance = $2`, [name, instance, now]);
  }

  async listNodes(): Promise<NodeRecord[]> {
    return (await this.pool.query<NodeRow>(`SELECT * FROM nodes ORDER BY name`)).rows.map(toNodeRecord);
  }

  async countWaiting(): Promise<Record<string, number>> {
    const result = await this.pool.query<{ state: string; n: string }>(
      `SELECT state, count(*) AS n FROM requests WHERE state IN ('received', 'queued', 'pending') GROUP BY state`,
    );
    return Object.fromEntries(result.rows.map((row) => [row.state, Number(row.n)]));
  }

  async listWaiting(dueBy: Date, limit: number): Promise<WaitingRequest[]> {
    const result = await this.pool.query<RequestRow>(
      `SELECT * FROM requests
       WHERE state = 'queued' OR (state = 'pending' AND next_attempt_at <= $1 AND (lease_expires_at IS NULL OR lease_expires_at <= $1))
       ORDER BY received_at, seq LIMIT $2`,
      [dueBy, limit],
    );
    return result.rows.map(toRequestRecord);
  }

  async findByCsr(profile: string, operation: Operation, csrSha256: string): Promise<FoundRequest | undefined> {
    // A rejected or expired approval answers the device's retries of that CSR too (403 with why), as a decision.
    const result = await this.prepared<RequestRow & Partial<ApprovalColumns>>(
      'find-by-csr',
      `SELECT r.*, ${APPROVAL_COLUMNS} FROM requests r LEFT JOIN approvals a ON a.request_id = r.id
       WHERE r.profile = $1 AND r.operation = $2 AND r.csr_sha256 = $3
         AND (r.state IN ('received', 'queued', 'pending', 'awaiting_approval', 'issued') OR a.state IN ('rejected', 'expired'))
       ORDER BY r.received_at DESC, r.seq DESC LIMIT 1`,
      [profile, operation, csrSha256],
    );
    const row = result.rows[0];
    return row && { ...toRequestRecord(row), approval: row.approval_state ? toApprovalRecord(row as RequestRow & ApprovalColumns) : null };
  }

  async findIssuedBySerial(serial: string): Promise<{ readonly profile: string; readonly der: Buffer } | undefined> {
    const result = await this.prepared<{ profile: string; der: Buffer }>('find-issued-by-serial', `SELECT profile, der FROM certificates WHERE serial = $1`, [
      serial,
    ]);
    return result.rows[0];
  }

  async getIssuedCertificate(requestId: string): Promise<Buffer | undefined> {
    const result = await this.prepared<{ der: Buffer }>('get-issued-certificate', `SELECT der FROM certificates WHERE request_id = $1`, [requestId]);
    return result.rows[0]?.der;
  }

  async listRequests(limit: number): Promise<RequestRecord[]> {
    return this.queryRequests({ limit });
  }

  async queryRequests(query: RequestQuery): Promise<RequestRecord[]> {
    const order = query.order === 'oldest' ? 'received_at, seq' : 'received_at DESC, seq DESC';
    const result = await this.pool.query<RequestRow>(
      // A NULL LIMIT is no limit in PostgreSQL.
      `SELECT * FROM requests
       WHERE ($1::timestamptz IS NULL OR received_at >= $1) AND ($2::text IS NULL OR profile = $2) AND ($3::text IS NULL OR state = $3)
       ORDER BY ${order} LIMIT $4`,
      [query.since ?? null, query.profile ?? null, query.state ?? null, query.limit ?? null],
    );
    return result.rows.map(toRequestRecord);
  }

  async getRequest(id: string): Promise<RequestRecord | undefined> {
    const result = await this.pool.query<RequestRow>(`SELECT * FROM requests WHERE id = $1`, [id]);
    return result.rows[0] && toRequestRecord(result.rows[0]);
  }

  async queryCertificates(query: CertificateQuery): Promise<CertificateRecord[]> {
    const result = await this.pool.query<CertificateRow>(
      `SELECT * FROM certificates
       WHERE ($1::timestamptz IS NULL OR not_after >= $1) AND ($2::timestamptz IS NULL OR not_after <= $2) AND ($3::text IS NULL OR profile = $3)
       ORDER BY not_after, serial LIMIT $4`,
      [query.notAfterFrom ?? null, query.notAfterTo ?? null, query.profile ?? null, query.limit ?? null],
    );
    return result.rows.map(toCertificateRecord);
  }

  async getCertificate(serial: string): Promise<CertificateRecord | undefined> {
    const result = await this.pool.query<CertificateRow>(`SELECT * FROM certificates WHERE serial = $1`, [serial]);
    return result.rows[0] && toCertificateRecord(result.rows[0]);
  }

  async getCached(key: string): Promise<Buffer | undefined> {
    const result = await this.pool.query<{ value: Buffer }>(`SELECT value FROM cache WHERE key = $1`, [key]);
    return result.rows[0]?.value;
  }

  async putCached(key: string, value: Buffer, updatedAt: Date): Promise<void> {
    await this.pool.query(`INSERT INTO cache (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = $3`, [
      key,
      value,
      updatedAt,
    ]);
  }

  async addPasscode(passcode: PasscodeRecord): Promise<void> {
    const registered = Object.keys(passcode.registeredValues).length > 0 ? JSON.stringify(passcode.registeredValues) : null;
    await this.transaction(async (client) => {
      await client.query(
        `INSERT INTO passcodes (id, policy, username, hash, description, created_at, enabled, max_uses, uses, expires_at, registered_values)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [
          passcode.id,
          passcode.policy,
          passcode.username,
          passcode.hash,
          passcode.description,
          passcode.createdAt,
          passcode.enabled,
          passcode.maxUses,
          passcode.uses,
          passcode.expiresAt,
          registered,
        ],
      );
      await passcodeEvent(client, passcode.id, 'created', new Date(passcode.createdAt));
    });
  }

  async findPasscode(policy: string, hash: string): Promise<PasscodeRecord | undefined> {
    const result = await this.prepared<PasscodeRow>('find-passcode', `SELECT * FROM passcodes WHERE policy = $1 AND hash = $2 AND enabled`, [policy, hash]);
    return result.rows[0] && toPasscodeRecord(result.rows[0]);
  }

  async getPasscode(id: string): Promise<PasscodeRecord | undefined> {
    const result = await this.pool.query<PasscodeRow>(`SELECT * FROM passcodes WHERE id = $1`, [id]);
    return result.rows[0] && toPasscodeRecord(result.rows[0]);
  }

  async listPasscodes(policy?: string): Promise<PasscodeRecord[]> {
    const result = await this.pool.query<PasscodeRow>(`SELECT * FROM passcodes WHERE $1::text IS NULL OR policy = $1 ORDER BY policy, created_at, id`, [
      policy ?? null,
    ]);
    return result.rows.map(toPasscodeRecord);
  }

  async setPasscodeEnabled(id: string, enabled: boolean): Promise<boolean> {
    return this.transaction(async (client) => {
      const result = await client.query(`UPDATE passcodes SET enabled = $2 WHERE id = $1`, [id, enabled]);
      if (result.rowCount !== 1) return false;
      await passcodeEvent(client, id, enabled ? 'enabled' : 'disabled', new Date());
      return true;
    });
  }

  async rotatePasscode(id: string, hash: string): Promise<boolean> {
    return this.transaction(async (client) => {
      const result = await client.query(`UPDATE passcodes SET hash = $2 WHERE id = $1`, [id, hash]);
      if (result.rowCount !== 1) return false;
      await passcodeEvent(client, id, 'rotated', new Date());
      return true;
    });
  }

  async passcodeEvents(since?: Date): Promise<PasscodeEvent[]> {
    const result = await this.pool.query<{ at: Date; passcode_id: string; policy: string; event: PasscodeEvent['event'] }>(
      `SELECT * FROM passcode_events WHERE $1::timestamptz IS NULL OR at >= $1 ORDER BY at, seq`,
      [since ?? null],
    );
    return result.rows.map((row) => ({ at: row.at.toISOString(), passcodeId: row.passcode_id, policy: row.policy, event: row.event }));
  }

  async decideApproval(requestId: string, decision: ApprovalDecision): Promise<boolean> {
    return this.transaction(async (client) => {
      const decided = await client.query(
        `UPDATE approvals SET state = $2, decided_at = $3, decided_by = $4, reason = $5
         WHERE request_id = $1 AND state = 'pending' AND expires_at > $3`,
        [requestId, decision.approved ? 'approved' : 'rejected', decision.at, decision.by, decision.reason ?? null],
      );
      if (decided.rowCount !== 1) return false;
      if (decision.approved) await queueApproved(client, requestId, decision.at, `approved by ${decision.by}; being issued`);
      else await refuseUnapproved(client, requestId, decision.at, decision.refusal);
      return true;
    });
  }

  async expireApprovals(now: Date, refusal: string): Promise<number> {
    return this.transaction(async (client) => {
      // Locked, so two nodes expiring at once settle each approval once.
      const due = await client.query<{ request_id: string; expires_at: Date }>(
        `UPDATE approvals SET state = 'expired', decided_at = expires_at
         WHERE request_id IN (SELECT request_id FROM approvals WHERE state = 'pending' AND expires_at <= $1 FOR UPDATE SKIP LOCKED)
         RETURNING request_id, expires_at`,
        [now],
      );
      for (const row of due.rows) await refuseUnapproved(client, row.request_id, row.expires_at, refusal);
      return due.rowCount ?? 0;
    });
  }

  async getApproval(requestId: string): Promise<ApprovalWithRequest | undefined> {
    const result = await this.pool.query<ApprovalRow>(`${APPROVALS_WITH_REQUESTS} WHERE a.request_id = $1`, [requestId]);
    return result.rows[0] && toApprovalWithRequest(result.rows[0]);
  }

  async queryApprovals(query: ApprovalQuery): Promise<ApprovalWithRequest[]> {
    const result = await this.pool.query<ApprovalRow>(
      `${APPROVALS_WITH_REQUESTS} WHERE ($1::text IS NULL OR r.profile = $1) AND ($2::text IS NULL OR a.state = $2)
       ORDER BY a.requested_at DESC, r.seq DESC LIMIT $3`,
      [query.profile ?? null, query.state ?? null, query.limit ?? null],
    );
    return result.rows.map(toApprovalWithRequest);
  }

  async approvalsSince(since?: Date): Promise<ApprovalWithRequest[]> {
    const result = await this.pool.query<ApprovalRow>(
      `${APPROVALS_WITH_REQUESTS} WHERE $1::timestamptz IS NULL OR a.requested_at >= $1 OR a.decided_at >= $1 ORDER BY a.requested_at, r.seq`,
      [since ?? null],
    );
    return result.rows.map(toApprovalWithRequest);
  }

  async countPendingApprovals(now: Date): Promise<Record<string, number>> {
    const result = await this.pool.query<{ profile: string; n: string }>(
      `SELECT r.profile, count(*) AS n FROM approvals a JOIN requests r ON r.id = a.request_id
       WHERE a.state = 'pending' AND a.expires_at > $1 GROUP BY r.profile`,
      [now],
    );
    return Object.fromEntries(result.rows.map((row) => [row.profile, Number(row.n)]));
  }

  /**
   * PostgreSQL keeps its own pages consistent (WAL, checksums when the
   * cluster has them); what est-ra can check is its own invariants: every
   * certificate's request and every approval's request exists, and every
   * issued request has its certificate.
   */
  async check(): Promise<string[]> {
    const result = await this.pool.query<{ problem: string }>(
      `SELECT 'certificates ' || c.serial || ': no requests row it refers to' AS problem
         FROM certificates c LEFT JOIN requests r ON r.id = c.request_id WHERE r.id IS NULL
       UNION ALL
       SELECT 'requests ' || r.id || ': issued without a certificate' FROM requests r
         WHERE r.state = 'issued' AND r.operation <> 'fullcmc' AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.request_id = r.id)`,
    );
    return result.rows.map((row) => row.problem);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

async function appliedVersion(client: pg.ClientBase): Promise<number> {
  const exists = await client.query<{ present: boolean }>(`SELECT to_regclass('schema_migrations') IS NOT NULL AS present`);
  if (!exists.rows[0]!.present) return 0;
  const result = await client.query<{ version: number | null }>(`SELECT max(version) AS version FROM schema_migrations`);
  return result.rows[0]!.version ?? 0;
}

/** Applies the migrations not yet applied, each in its own transaction, all under one advisory lock. */
async function migrate(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SELECT pg_advisory_xact_lock($1)`, [MIGRATION_LOCK.toString()]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const applied = await appliedVersion(client);
    if (applied > POSTGRES_MIGRATIONS.length)
      throw new Error(`the database is at schema version ${applied}, newer than this est-ra knows (${POSTGRES_MIGRATIONS.length}): upgrade est-ra`);
    for (let version = applied; version < POSTGRES_MIGRATIONS.length; version++) {
      await client.query(POSTGRES_MIGRATIONS[version]!);
      await client.query(`INSERT INTO schema_migrations (version) VALUES ($1)`, [version + 1]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** An approved request is queued: the retry worker of whichever node takes it first issues or forwards it once. */
async function queueApproved(client: pg.ClientBase, requestId: string, at: Date, reason: string): Promise<void> {
  await client.query(`UPDATE requests SET state = 'queued', status = 202, reason = $3, next_attempt_at = $2 WHERE id = $1 AND state = 'awaiting_approval'`, [
    requestId,
    at,
    reason,
  ]);
}

/** A rejected or expired request is refused (403), and the passcode use it took given back first. */
async function refuseUnapproved(client: pg.ClientBase, requestId: string, at: Date, reason: string): Promise<void> {
  await client.query(
    `UPDATE passcodes SET uses = uses - 1
     WHERE uses > 0 AND id = (SELECT principal->>'passcodeId' FROM requests WHERE id = $1 AND state = 'awaiting_approval' AND principal->>'kind' = 'passcode')`,
    [requestId],
  );
  await client.query(
    `UPDATE requests SET state = 'refused', status = 403, reason = $3, next_attempt_at = NULL, completed_at = $2 WHERE id = $1 AND state = 'awaiting_approval'`,
    [requestId, at, reason],
  );
}

async function passcodeEvent(client: pg.ClientBase, id: string, event: PasscodeEvent['event'], at: Date): Promise<void> {
  await client.query(`INSERT INTO passcode_events (at, passcode_id, policy, event) SELECT $2, id, policy, $3 FROM passcodes WHERE id = $1`, [id, at, event]);
}

function requestParameters(request: NewRequest): unknown[] {
  return [
    request.id,
    request.receivedAt,
    request.profile,
    request.peerAddress,
    JSON.stringify(request.principal),
    request.operation,
    request.csr ?? null,
    request.csrSha256 ?? null,
    request.clientCertificate ?? null,
  ];
}
