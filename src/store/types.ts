/**
 * Durable state behind one interface: SQLite for one RA node (embedded
 * default), PostgreSQL later for several. Methods are async so both fit.
 */

/** fullcmc is only relayed (RFC 7030 §4.3, fullcmc: passthrough): recorded with its body's hash and the upstream's status. */
export type Operation = 'simpleenroll' | 'simplereenroll' | 'serverkeygen' | 'fullcmc';

/** Who made a request, as the authentication step established it. */
export type Principal =
  | {
      readonly kind: 'passcode';
      readonly passcodeId: string;
      readonly policy: string;
      readonly username?: string;
      /** Values registered with the passcode (`--value common_name=sensor-17`): the name policy's user_supplied source. */
      readonly registeredValues?: Readonly<Record<string, readonly string[]>>;
      /** With enroll_authentication.require_all: the client certificate presented as well. */
      readonly certificate?: { readonly subject: string; readonly serial: string; readonly issuer: string };
    }
  | {
      readonly kind: 'certificate';
      readonly subject: string;
      readonly serial: string;
      readonly issuer: string;
      /** The revocation decision, when the policy checks it: good, revoked (renewal allowed) or unknown (soft_fail). */
      readonly revocation?: string;
      /** A bootstrap certificate's subject serialNumber and CN, the name policy's user_supplied source (IDevID → LDevID). */
      readonly registeredValues?: Readonly<Record<string, readonly string[]>>;
    }
  | {
      /** A downstream RA (RFC 7030 §3.7) enrolling on behalf of a device: the RA's certificate, and the device the CSR names. */
      readonly kind: 'ra';
      readonly subject: string;
      readonly serial: string;
      readonly issuer: string;
      readonly revocation?: string;
      /** The device's subject as the CSR gives it (RFC 4514). */
      readonly device?: string;
    }
  | { readonly kind: 'none' };

/**
 * A node's hold on a request it is working on (forwarding it, or polling
 * the upstream for it). Other nodes leave the request alone until the lease
 * expires; a node that dies (kill -9) holds it no longer than that.
 */
export interface Lease {
  /** The node: `cluster.node_name`, by default the host name. */
  readonly owner: string;
  readonly expiresAt: Date;
}

/** A failing upstream as the store shares it between nodes (Store.recordUpstreamFailure). */
export interface UpstreamHealthRecord {
  readonly profile: string;
  /** Failed probes in a row (requests failing together count once). */
  readonly failures: number;
  /** Not before this is the next probe sent. */
  readonly nextProbeAt: Date;
  /** The node probing now, and until when its claim holds. */
  readonly probingNode: string | null;
  readonly probeExpiresAt: Date | null;
}

/**
 * One est-ra process in the cluster's registry (`est-ra nodes`): which
 * process holds a `cluster.node_name` now. Two live processes under one name
 * would take each other's in-flight work as their own at a restart, so a
 * second one refuses to start (enrollment/node.ts joinCluster).
 */
export interface NodeRecord {
  readonly name: string;
  /** Random per start of a process. */
  readonly instance: string;
  readonly host: string;
  /** /etc/machine-id where there is one: tells two hosts of one name (cloned images) apart. */
  readonly machineId: string | null;
  readonly pid: number;
  readonly version: string;
  readonly startedAt: string;
  readonly lastSeenAt: string;
  /** Set by a clean stop; a node that died keeps null and goes silent. */
  readonly stoppedAt: string | null;
}

/** Which in-flight requests requeueInterrupted takes back. */
export interface RequeueScope {
  /** Requests whose lease expired by then (their node stopped or died). */
  readonly now: Date;
  /** At a node's start: the requests its previous run left in flight, lease or not. */
  readonly restartedOwner?: string;
}

export interface NewRequest {
  readonly id: string;
  readonly receivedAt: Date;
  readonly profile: string;
  readonly peerAddress: string;
  readonly principal: Principal;
  readonly operation: Operation;
  /** DER PKCS#10; absent when the body could not be decoded. */
  readonly csr?: Buffer;
  /** SHA-256 of the CSR: a device that retries sends the same CSR (RFC 7030 §4.2.3). */
  readonly csrSha256?: string;
  /** simplereenroll: DER of the certificate being renewed, needed to forward the request again. */
  readonly clientCertificate?: Buffer;
  /** The node that forwards it now; absent for a request refused before it was recorded. */
  readonly lease?: Lease;
}

export interface IssuedOutcome {
  readonly serial: string;
  readonly subject: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly certificate: Buffer;
}

/**
 * received: durable, being forwarded now · queued: the upstream was
 * unreachable, est-ra will forward it again · pending: the upstream answered
 * 202, est-ra polls it · awaiting_approval: its profile requires an
 * administrator's approval (approved: queued) · issued · refused (by est-ra,
 * the upstream or an administrator).
 */
export type RequestState = 'received' | 'queued' | 'pending' | 'awaiting_approval' | 'issued' | 'refused';

export interface RequestRecord {
  readonly id: string;
  readonly receivedAt: string;
  readonly completedAt: string | null;
  readonly profile: string;
  readonly peerAddress: string;
  readonly principal: Principal;
  readonly operation: Operation;
  readonly csr: Buffer | null;
  /** SHA-256 of the CSR (hex): how a device's retry finds its request, and how to see a CSR recorded twice. */
  readonly csrSha256: string | null;
  readonly clientCertificate: Buffer | null;
  readonly state: RequestState;
  readonly status: number | null;
  readonly reason: string | null;
  readonly attempts: number;
  readonly nextAttemptAt: string | null;
  readonly serial: string | null;
  readonly subject: string | null;
  readonly notAfter: string | null;
  /**
   * An earlier forward of this request may have reached the upstream without
   * est-ra getting its answer (the process stopped, or the upstream timed out
   * or reset the connection), so forwarding it again may leave a second
   * certificate at the upstream: EST has no idempotency key (RFC 7030 §4.2).
   */
  readonly possiblyIssuedTwiceUpstream: boolean;
}

/** A request the store found by its CSR: with its approval, when its profile required one. */
export interface FoundRequest extends RequestRecord {
  readonly approval: ApprovalRecord | null;
}

/**
 * An approval's life (require_approval_for_enroll/renew): pending until an
 * administrator approves or rejects it, or until it expires.
 */
export type ApprovalState = 'pending' | 'approved' | 'rejected' | 'expired';

/** The approval a request waited for; its id is the request's. */
export interface ApprovalRecord {
  readonly requestId: string;
  readonly state: ApprovalState;
  /** ISO times. */
  readonly requestedAt: string;
  readonly expiresAt: string;
  /** When it was approved or rejected, or when it expired (its expiresAt). */
  readonly decidedAt: string | null;
  /** Who decided (the admin's OS user or --by); null when it expired. */
  readonly decidedBy: string | null;
  /** The administrator's reason for a rejection (optional note for an approval). */
  readonly reason: string | null;
}

/** An approval with the request it is for, as the admin commands show it. */
export interface ApprovalWithRequest extends ApprovalRecord {
  readonly request: RequestRecord;
}

/** An administrator's decision on a pending approval. */
export type ApprovalDecision =
  | { readonly approved: true; readonly by: string; readonly at: Date; readonly reason?: string }
  | {
      readonly approved: false;
      readonly by: string;
      readonly at: Date;
      readonly reason: string;
      /** The one-line reason the device is told from now on, recorded with the refused request. */
      readonly refusal: string;
    };

/** Which approvals `est-ra approvals list` reads; absent fields do not narrow. */
export interface ApprovalQuery {
  readonly profile?: string;
  readonly state?: ApprovalState;
  readonly limit?: number;
}

/** A request a stopped process left in flight, queued again at start. */
export interface InterruptedRequest {
  readonly id: string;
  readonly profile: string;
  /** Its profile forwards to an upstream, which may have issued it already. */
  readonly possiblyIssuedTwiceUpstream: boolean;
}

/** A request waiting for the upstream: what the retry worker needs to forward it again. */
export type WaitingRequest = Pick<
  RequestRecord,
  'id' | 'profile' | 'principal' | 'operation' | 'csr' | 'clientCertificate' | 'state' | 'attempts' | 'nextAttemptAt' | 'possiblyIssuedTwiceUpstream'
>;

export interface PasscodeRecord {
  readonly id: string;
  readonly policy: string;
  readonly username: string | null;
  /** `sha256:<hex>`: see auth/passcode.ts for why a fast hash is right here. */
  readonly hash: string;
  readonly description: string | null;
  readonly createdAt: string;
  readonly enabled: boolean;
  /** DigiCert's number_of_usage: enrollments it may authenticate; null for no limit. */
  readonly maxUses: number | null;
  readonly uses: number;
  /** ISO time after which it no longer authenticates; null for never. */
  readonly expiresAt: string | null;
  /** DigiCert's registered_values: what the name policy's user_supplied source takes, e.g. { common_name: ['sensor-17'] }. */
  readonly registeredValues: Readonly<Record<string, readonly string[]>>;
}

export interface RefusalOptions {
  /**
   * A passcode use the request took and will not need (the upstream refused
   * it): given back in the same transaction as the refusal, once.
   */
  readonly refundPasscodeUse?: string;
}

/** One refusal before authentication, as the enrollment service reports it. */
export interface RefusalEvent {
  readonly address: string;
  readonly profile: string;
  readonly operation: string;
  /** The EstError code. */
  readonly code: string;
  readonly status: number;
  readonly reason: string;
  readonly at: Date;
}

/** Refusals before authentication, counted per address, profile, operation and code per hour. */
export interface RefusalCount {
  readonly address: string;
  readonly profile: string;
  readonly operation: string;
  readonly code: string;
  /** The hour, ISO, e.g. 2026-12-01T00. */
  readonly hour: string;
  readonly status: number;
  readonly lastReason: string;
  readonly count: number;
  readonly firstAt: string;
  readonly lastAt: string;
}

/** A change to a passcode, recorded with it (the audit trail). */
export interface PasscodeEvent {
  /** ISO time. */
  readonly at: string;
  readonly passcodeId: string;
  readonly policy: string;
  readonly event: 'created' | 'disabled' | 'enabled' | 'rotated';
}

/** Which requests `est-ra requests list` and `audit export` read; every field narrows, absent ones do not. */
export interface RequestQuery {
  /** Received at or after this time. */
  readonly since?: Date;
  readonly profile?: string;
  readonly state?: RequestState;
  /** newest (default) or oldest first. */
  readonly order?: 'newest' | 'oldest';
  readonly limit?: number;
}

/** A certificate est-ra issued (its own CA's or an upstream's), as recorded with the request it answered. */
export interface CertificateRecord {
  /** Lowercase hex, as openssl prints it. */
  readonly serial: string;
  readonly requestId: string;
  readonly profile: string;
  readonly subject: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly der: Buffer;
}

export interface CertificateQuery {
  /** notAfter at or after this time (e.g. now: not expired yet). */
  readonly notAfterFrom?: Date;
  /** notAfter at or before this time (e.g. now + 30 days: expiring within 30 days). */
  readonly notAfterTo?: Date;
  readonly profile?: string;
  readonly limit?: number;
}

/** What `est-ra store stats` shows. */
export interface StoreStats {
  readonly requests: number;
  readonly refused: number;
  readonly waiting: number;
  readonly certificates: number;
  readonly refusal_rows: number;
  readonly refusals_counted: number;
  readonly passcodes: number;
  /** The database file and its write-ahead log, in bytes. */
  readonly bytes: number;
}

export interface Store {
  /**
   * Makes the request durable (state received) before anything is issued for
   * it. With `passcodeUse`, takes one use of that passcode in the same
   * transaction: false, and nothing recorded, when it is disabled, expired at
   * `now` or used up, so two requests never both take the last use and a
   * crash never keeps one without the other.
   */
  recordRequest(
    request: NewRequest,
    passcodeUse?: { readonly passcodeId: string; readonly now: Date },
    /** Its profile requires approval: recorded awaiting_approval, with a pending approval, in the same transaction. */
    approval?: { readonly expiresAt: Date },
  ): Promise<boolean>;
  /** Records the certificate issued for a request, atomically with its outcome. */
  recordIssued(requestId: string, completedAt: Date, outcome: IssuedOutcome): Promise<void>;
  /**
   * Records why a request was refused (status and the reason the client was
   * given), whether or not it was recorded as received before.
   */
  recordRefused(request: NewRequest, completedAt: Date, status: number, reason: string, options?: RefusalOptions): Promise<void>;
  /**
   * Records a request relayed to the upstream as it was (fullcmc), finished in
   * one write: never `received`, so the retry worker never forwards it again.
   * A 2xx answer is recorded `issued` without a certificate (the CMC response is
   * not parsed), anything else `refused`, each with the upstream's status.
   */
  recordRelayed(request: NewRequest, completedAt: Date, status: number, reason: string): Promise<void>;
  /**
   * Counts a refusal made before the client was authenticated (a wrong
   * passcode, no client certificate, an address outside the allowlist): one
   * row per address, profile, operation and code per hour, so a flood of
   * them cannot fill the disk.
   */
  countRefusal(refusal: RefusalEvent): Promise<void>;
  refusalCounts(limit: number): Promise<RefusalCount[]>;
  /**
   * Retention: removes refused requests and counted refusals older than
   * `before`, and the CSR and client-certificate bodies of issued requests;
   * never an issued-certificate record or a request still waiting. Returns
   * the rows changed.
   */
  prune(before: Date): Promise<number>;
  stats(): Promise<StoreStats>;
  /**
   * The store's own consistency check (SQLite: integrity_check and
   * foreign_key_check), for `est-ra store check` after a crash: one line per
   * problem, none when the store is sound.
   */
  check(): Promise<string[]>;
  /**
   * Parks a request for the retry worker: queued (upstream unreachable) or
   * pending (upstream said 202). `outcomeUnknown`: the failed attempt may have
   * reached the upstream (a timeout, a reset), so the request is marked
   * possibly issued twice upstream.
   */
  recordWaiting(requestId: string, state: 'queued' | 'pending', nextAttemptAt: Date, attempts: number, reason: string, outcomeUnknown?: boolean): Promise<void>;
  /**
   * Takes a waiting request for this node, under `lease`: a queued one
   * becomes received (in flight), a pending one whose next attempt is due
   * stays pending, held. False when another node holds it, it is no longer
   * waiting, or it is not due. Whatever is recorded next (issued, waiting
   * again, refused) ends the lease; a process that stops while holding it
   * leaves it to requeueInterrupted.
   */
  markForwarding(requestId: string, lease: Lease, now: Date): Promise<boolean>;
  /**
   * Requests left `received` (in flight) by a node that stopped become
   * `queued` again: those whose lease expired by `scope.now`, and at a
   * node's start those its previous run held. Those of `forwardingProfiles`
   * (profiles with an upstream) are marked possibly issued twice upstream.
   */
  requeueInterrupted(forwardingProfiles: readonly string[], scope: RequeueScope): Promise<InterruptedRequest[]>;
  /** How many requests wait in each state (queued, pending, received). */
  countWaiting(): Promise<Record<string, number>>;
  /**
   * The upstream of `profile` failed at `now` (issue #13: one health state
   * for every node). Requests failing together are one step: while the
   * recorded next probe is still ahead, it is returned unchanged; otherwise
   * failures goes up by one, the next probe is `now + delayMs(failures)`,
   * and any probe claim ends.
   */
  recordUpstreamFailure(profile: string, now: Date, delayMs: (failures: number) => number): Promise<UpstreamHealthRecord>;
  /** The upstream of `profile` answered: its row goes; true when there was one (it had been failing). */
  recordUpstreamSuccess(profile: string): Promise<boolean>;
  /**
   * Takes the probe of a failing upstream for `lease.owner`: true for one
   * node only, when the probe is due and no node holds an unexpired claim.
   * A node that dies mid-probe loses the claim when `lease.expiresAt` passes.
   */
  claimUpstreamProbe(profile: string, lease: Lease, now: Date): Promise<boolean>;
  /** Ends `owner`'s probe claim without an outcome (the probe request was not sent), so another may probe. */
  releaseUpstreamProbe(profile: string, owner: string): Promise<void>;
  /** At `owner`'s start: every failing upstream's probe is due by `now`, and the claims `owner` held end. */
  restartUpstreamProbes(owner: string, now: Date): Promise<void>;
  /** Every failing upstream, for each node's cache of them. */
  listUpstreamHealth(): Promise<UpstreamHealthRecord[]>;
  /** The registry row of a node name, if a process ever held it. */
  getNode(name: string): Promise<NodeRecord | undefined>;
  /**
   * Makes `node` the holder of its name, if the row still names the
   * instance `replacing` (read before; undefined: no row yet). False when
   * another process changed the row first: read it again and decide again.
   */
  claimNode(node: NodeRecord, replacing: string | undefined): Promise<boolean>;
  /** `instance` is alive at `now`; false when another instance holds the name now. */
  nodeSeen(name: string, instance: string, now: Date): Promise<boolean>;
  /** A clean stop: the name is free for the next start at once. */
  nodeStopped(name: string, instance: string, now: Date): Promise<void>;
  /** Every name ever held, with its last holder. */
  listNodes(): Promise<NodeRecord[]>;
  /** Queued requests, and pending ones whose next attempt is due and that no node holds, oldest first. */
  listWaiting(dueBy: Date, limit: number): Promise<WaitingRequest[]>;
  /**
   * The newest request of a profile and operation with this CSR that is
   * waiting or issued, or whose approval was rejected or expired, so a
   * device's retry gets the same request's answer.
   */
  findByCsr(profile: string, operation: Operation, csrSha256: string): Promise<FoundRequest | undefined>;
  /** The certificate est-ra issued with this serial and the profile it was issued under, if it issued one. */
  findIssuedBySerial(serial: string): Promise<{ readonly profile: string; readonly der: Buffer } | undefined>;
  /** The DER certificate issued for a request. */
  getIssuedCertificate(requestId: string): Promise<Buffer | undefined>;
  listRequests(limit: number): Promise<RequestRecord[]>;
  /** Requests by time, profile and state (the admin CLI and the audit export). */
  queryRequests(query: RequestQuery): Promise<RequestRecord[]>;
  getRequest(id: string): Promise<RequestRecord | undefined>;
  /** Issued certificates by expiry and profile, soonest to expire first. */
  queryCertificates(query: CertificateQuery): Promise<CertificateRecord[]>;
  getCertificate(serial: string): Promise<CertificateRecord | undefined>;
  /** Counted refusals whose last one was at or after `since` (all when absent), oldest first. */
  refusalCountsSince(since?: Date): Promise<RefusalCount[]>;

  /** A small durable cache (e.g. the upstream's /cacerts), so a restart while the upstream is down still serves it. */
  getCached(key: string): Promise<Buffer | undefined>;
  putCached(key: string, value: Buffer, updatedAt: Date): Promise<void>;

  addPasscode(passcode: PasscodeRecord): Promise<void>;
  /** The enabled passcode of a policy with this hash, if any (limits are the caller's to check). */
  findPasscode(policy: string, hash: string): Promise<PasscodeRecord | undefined>;
  /** A passcode by id, whatever its state. */
  getPasscode(id: string): Promise<PasscodeRecord | undefined>;
  listPasscodes(policy?: string): Promise<PasscodeRecord[]>;
  /** Enables or disables a passcode; false when there is no such passcode. */
  setPasscodeEnabled(id: string, enabled: boolean): Promise<boolean>;
  /** Replaces a passcode's secret (its hash), keeping its limits and count; false when there is no such passcode. */
  rotatePasscode(id: string, hash: string): Promise<boolean>;
  /**
   * What happened to passcodes since `since` (all when absent), oldest first:
   * addPasscode, setPasscodeEnabled and rotatePasscode each record their
   * event in their own transaction.
   */
  passcodeEvents(since?: Date): Promise<PasscodeEvent[]>;

  /**
   * Settles a pending approval, in one transaction with its request:
   * approved, the request is queued (the retry worker issues or forwards it
   * once, as any queued request); rejected, it is refused (403, `refusal`)
   * and the passcode use it took given back. False, and nothing changed,
   * when it is not pending or has expired by `decision.at`.
   */
  decideApproval(requestId: string, decision: ApprovalDecision): Promise<boolean>;
  /**
   * Pending approvals whose time ran out by `now` become expired (decided at
   * their expiresAt); their requests are refused (403, `refusal`) and their
   * passcode uses given back. Returns how many.
   */
  expireApprovals(now: Date, refusal: string): Promise<number>;
  getApproval(requestId: string): Promise<ApprovalWithRequest | undefined>;
  /** Approvals, newest request first. */
  queryApprovals(query: ApprovalQuery): Promise<ApprovalWithRequest[]>;
  /** Approvals requested or decided at or after `since` (all when absent), for the audit export. */
  approvalsSince(since?: Date): Promise<ApprovalWithRequest[]>;
  /** Pending approvals not expired at `now`, per profile (the gauge). */
  countPendingApprovals(now: Date): Promise<Record<string, number>>;

  close(): Promise<void>;
}
