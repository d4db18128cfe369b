import { createHash, type KeyObject } from 'node:crypto';
import pLimit, { type LimitFunction } from 'p-limit';
import { EstError } from '../errors.js';
import type { VerifiedCsr } from '../pki/csr.js';
import { CertificateView } from '../pki/certificate-view.js';
import type { Profile } from '../policy/profile.js';
import type { FoundRequest, NewRequest, Store } from '../store/types.js';
import type { Logger } from '../ops/logger.js';
import { LOG_EVENT } from '../ops/log-events.js';
import { UpstreamUnavailableError, type IssuedCertificate } from '../upstream/types.js';
import type { Metrics } from '../ops/metrics.js';
import { UpstreamHealth } from './upstream-health.js';
import { encodeSubject, encodeSubjectAltName, type IssuedNames } from '../pki/names.js';
import { generateServerKey, requestForServerKey, type ServerKeyNames } from '../pki/server-key.js';
import { passcodeUseRefusal } from '../auth/passcode.js';
import { approvalExpired, approvalRefusal, awaitingApproval, needsApproval } from './approvals.js';
import { leaseFor, type ClusterNode } from './node.js';

/** Key generations that may wait, per one running: beyond, /serverkeygen answers 503 (EST_KEY_GENERATION_BUSY). */
const KEY_GENERATIONS_WAITING = 8;
/** Generations finish within seconds (RSA-4096 is the slowest): the device comes back after a few. */
const KEY_GENERATION_BUSY_RETRY_AFTER_S = 5;

const FAILURE_KINDS: Partial<Record<string, string>> = {
  EST_PENDING: 'pending',
  EST_UPSTREAM_UNAVAILABLE: 'unavailable',
  EST_UPSTREAM_AUTH: 'auth',
  EST_UPSTREAM_POP: 'pop',
  EST_UPSTREAM_INVALID: 'invalid',
  EST_UPSTREAM_REFUSED: 'refused',
};

/** The metric label for an upstream answer that was not a certificate. */
function failureKind(err: unknown): string {
  return (err instanceof EstError && FAILURE_KINDS[err.code]) || 'error';
}

/** A request that passed authentication and policy, ready to be recorded and forwarded. */
export interface AcceptedRequest extends Omit<NewRequest, 'csrSha256' | 'csr'> {
  readonly csr: VerifiedCsr;
  /** simplereenroll: the certificate being renewed. */
  readonly current?: CertificateView;
  /** The names the policy step decided. */
  readonly names: IssuedNames;
}

/** What became of a request: a certificate, or (thrown) EstError.pending or a refusal. */
export interface Enrollment {
  readonly certificate: IssuedCertificate;
  /** True when a retry of an earlier request got that request's certificate. */
  readonly replayed: boolean;
  /** /serverkeygen: the key est-ra generated for the certificate; held only until the answer is written, never stored. */
  readonly serverKey?: KeyObject;
}

/**
 * The RA's core: record, forward, record. A request is durable before it
 * leaves; when the upstream cannot be reached it stays queued and the device
 * is told to come back (202 + Retry-After, RFC 7030 §4.2.3); the retry worker
 * forwards it later, and the device's retry with the same CSR gets the
 * certificate. A request whose profile requires approval is recorded
 * awaiting it and answered 202 until an administrator decides (approvals.ts);
 * approved, it is queued like any other. Used by the HTTP handler and by the
 * retry worker alike.
 */
export class EnrollmentService {
  /** The upstreams' health, shared with every node on the store (upstream-health.ts). */
  readonly health: UpstreamHealth;

  /** /serverkeygen's generations: `limits.concurrent_key_generations` at once, KEY_GENERATIONS_WAITING times as many waiting. */
  private readonly keyGenerations: LimitFunction;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly now: () => Date,
    readonly node: ClusterNode,
    concurrentKeyGenerations: number,
  ) {
    this.health = new UpstreamHealth(store, node);
    this.keyGenerations = pLimit(concurrentKeyGenerations);
  }

  /** `onRequest` learns the recorded request this one is: itself when new, the earlier one when a device retries. */
  async enroll(profile: Profile, request: AcceptedRequest, onRequest: (requestId: string) => void = () => {}): Promise<Enrollment> {
    const csrSha256 = createHash('sha256').update(request.csr.der).digest('hex');
    if (request.operation === 'serverkeygen') return this.generateAndIssue(profile, request, csrSha256, onRequest);
    const earlier = await this.store.findByCsr(profile.name, request.operation, csrSha256);
    if (earlier) {
      const answer = await this.answerRetry(profile, earlier, () => onRequest(earlier.id));
      if (answer) return answer;
    }
    onRequest(request.id);
    // A request that needs approval is recorded awaiting it in the same transaction: never `received`, which a restart would forward.
    const approval = needsApproval(profile, request.operation)
      ? { expiresAt: new Date(request.receivedAt.getTime() + profile.approval.expiresAfterMs) }
      : undefined;
    const record = await this.recordNew(request, csrSha256, approval);
    if (approval) {
      this.logger.info(LOG_EVENT.awaitingApproval, {
        id: record.id,
        profile: profile.name,
        operation: record.operation,
        expires_at: approval.expiresAt.toISOString(),
      });
      throw awaitingApproval(profile);
    }
    const probeDueAt = this.health.probeDueAt(profile.name);
    if (probeDueAt !== undefined) {
      // The upstream is known to be down: queue at once rather than make the device wait for a timeout.
      await this.store.recordWaiting(record.id, 'queued', new Date(probeDueAt), 0, 'the upstream CA is unreachable');
      throw EstError.pending(
        this.retryAfterFor(new Date(probeDueAt).toISOString()),
        'the upstream CA is unreachable; the request is queued and will be forwarded',
      );
    }
    return { certificate: await this.forward(profile, record, request.csr, request.current, request.names, 0), replayed: false };
  }

  /**
   * Records a new request; a passcode use is taken by a new request only,
   * with it in one transaction: a device retrying (after 202, a restart or a
   * lost answer) spends none.
   */
  private async recordNew(request: AcceptedRequest, csrSha256: string, approval?: { readonly expiresAt: Date }): Promise<NewRequest> {
    // Held by this node while it forwards: another node takes it over only if this one stops (retry-worker.ts).
    const lease = leaseFor(this.node, this.now());
    const record: NewRequest = { ...request, csr: request.csr.der, csrSha256, clientCertificate: request.current?.der, lease };
    const passcodeUse = request.principal.kind === 'passcode' ? { passcodeId: request.principal.passcodeId, now: request.receivedAt } : undefined;
    if (!(await this.store.recordRequest(record, passcodeUse, approval))) {
      // Why, for the record (the device only ever sees the 401): disabled, expired or used up by now.
      const passcode = passcodeUse && (await this.store.getPasscode(passcodeUse.passcodeId));
      const error = new EstError('EST_AUTH_FAILED', { reason: passcodeUseRefusal(passcodeUse?.passcodeId ?? '', passcode, request.receivedAt) });
      await this.recordRefusal(record, error);
      throw error;
    }
    return record;
  }

  /**
   * /serverkeygen (RFC 7030 §4.4): a new key of the profile's type, a
   * certificate for it with the decided names, from the local CA or the
   * upstream (sent est-ra's own CSR signed by the new key, its answer
   * checked like any). Every request is a new one, recorded and taking a
   * passcode use like any enrollment: a device sending the same CSR again
   * gets a new key and certificate, never the stored certificate, whose key
   * is gone (est-ra keeps none). Nothing waits either: with the key held
   * only for this answer, an upstream that is down or answers 202 refuses
   * the request (503 / 502) and gives the passcode use back.
   */
  private async generateAndIssue(profile: Profile, request: AcceptedRequest, csrSha256: string, onRequest: (requestId: string) => void): Promise<Enrollment> {
    onRequest(request.id);
    const record = await this.recordNew(request, csrSha256);
    const probeDueAt = this.health.probeDueAt(profile.name);
    if (probeDueAt !== undefined) {
      const error = serverKeygenUnavailable(this.retryAfterFor(new Date(probeDueAt).toISOString()));
      await this.refuseAccepted(record, error);
      throw error;
    }
    // A queue longer than this would answer after the device gave up; it is told to come back instead.
    if (this.keyGenerations.pendingCount >= KEY_GENERATIONS_WAITING * this.keyGenerations.concurrency) {
      const error = new EstError('EST_KEY_GENERATION_BUSY', { retryAfter: KEY_GENERATION_BUSY_RETRY_AFTER_S });
      await this.refuseAccepted(record, error);
      throw error;
    }
    let key: KeyObject;
    let keyCsr: VerifiedCsr;
    try {
      key = await this.keyGenerations(() => generateServerKey(serverKeyType(profile, request.csr)));
      keyCsr = await requestForServerKey(key, serverKeyNames(request.csr, request.names));
    } catch (err) {
      // Never the key itself in a cause: only generation or signing failed, with its message.
      const error = new EstError('EST_INTERNAL', { cause: err });
      await this.refuseAccepted(record, error);
      throw error;
    }
    const issued = await this.forward(profile, record, keyCsr, undefined, { ...request.names, asRequested: true }, 0);
    return { certificate: issued, replayed: false, serverKey: key };
  }

  /**
   * A device sending again the CSR of a request that is waiting or issued:
   * the waiting one is answered 202 again, the issued one with its
   * certificate while that is still valid; one awaiting approval 202 with
   * the profile's Retry-After until it is decided, then 403 with why once
   * rejected or expired (an approved one is queued: 202 until issued).
   * Undefined: treat it as new.
   */
  private async answerRetry(profile: Profile, earlier: FoundRequest, isRetry: () => void): Promise<Enrollment | undefined> {
    const { id, state, nextAttemptAt, approval } = earlier;
    if (state === 'awaiting_approval') {
      isRetry();
      if (approval && Date.parse(approval.expiresAt) <= this.now().getTime()) {
        await this.store.expireApprovals(this.now(), approvalExpired().reason);
        throw approvalExpired();
      }
      throw awaitingApproval(profile);
    }
    if (state === 'refused' && approval) {
      isRetry();
      throw approvalRefusal(approval);
    }
    if (state === 'queued' || state === 'pending' || state === 'received') {
      isRetry();
      throw EstError.pending(this.retryAfterFor(nextAttemptAt), 'request accepted earlier; certificate not ready yet');
    }
    const der = state === 'issued' ? await this.store.getIssuedCertificate(id) : undefined;
    if (!der) return undefined;
    const certificate = CertificateView.parse(der);
    if (this.now() > certificate.notAfter) return undefined;
    isRetry();
    return { certificate, replayed: true };
  }

  /**
   * Sends a recorded request upstream and records the outcome. Throws
   * EstError.pending when it must wait (upstream 202, or unreachable and
   * queued), or the refusal.
   */
  async forward(
    profile: Profile,
    record: NewRequest,
    csr: VerifiedCsr,
    current: CertificateView | undefined,
    names: IssuedNames,
    attempts: number,
  ): Promise<IssuedCertificate> {
    const context = { requestId: record.id, profile: profile.name };
    try {
      const issued =
        record.operation === 'simplereenroll'
          ? await profile.upstream.simpleReenroll(current, csr, context)
          : await profile.upstream.simpleEnroll(csr, context, names);
      await this.store.recordIssued(record.id, this.now(), {
        serial: issued.serialNumber,
        subject: issued.subject,
        notBefore: issued.notBefore,
        notAfter: issued.notAfter,
        certificate: issued.der,
      });
      await this.upstreamAnswered(profile);
      return issued;
    } catch (err) {
      this.metrics.upstreamFailures.inc({ profile: profile.name, kind: failureKind(err) });
      if (record.operation === 'serverkeygen') {
        // Nothing waits: the generated key is not kept (generateAndIssue).
        const error = await this.serverKeygenFailure(profile, err);
        await this.refuseAccepted(record, error);
        throw error;
      }
      if (err instanceof EstError && err.code === 'EST_PENDING') {
        // The upstream answered 202: poll it when it said to (RFC 7030 §4.2.3).
        const retryAt = new Date(this.now().getTime() + (err.retryAfter ?? 60) * 1000);
        await this.store.recordWaiting(record.id, 'pending', retryAt, attempts + 1, err.reason);
        throw err;
      }
      if (err instanceof UpstreamUnavailableError) {
        const retryAt = await this.health.failed(profile.name, this.now());
        const outcomeUnknown = err.mayHaveReachedUpstream;
        await this.store.recordWaiting(record.id, 'queued', retryAt, attempts + 1, err.reason, outcomeUnknown);
        this.logger.warn(LOG_EVENT.requestQueued, {
          id: record.id,
          profile: profile.name,
          reason: err.reason,
          retry_at: retryAt.toISOString(),
          ...(outcomeUnknown ? { possibly_issued_twice_upstream: true } : {}),
        });
        throw EstError.pending(this.retryAfterFor(retryAt.toISOString()), 'the upstream CA is unreachable; the request is queued and will be forwarded', err);
      }
      const error = err instanceof EstError ? err : new EstError('EST_INTERNAL', { cause: err });
      await this.refuseAccepted(record, error);
      throw error;
    }
  }

  /**
   * The upstream issued: it is answering again if it had been failing. After
   * the certificate is recorded, and never failing the request: a store error
   * here leaves the shared state failing until the next probe clears it.
   */
  private async upstreamAnswered(profile: Profile): Promise<void> {
    try {
      if (await this.health.succeeded(profile.name)) this.logger.info(LOG_EVENT.upstreamRecovered, { profile: profile.name });
    } catch (err) {
      this.logger.error(LOG_EVENT.internalError, { error: err instanceof Error ? err.message : String(err) });
    }
  }

  /**
   * A recorded request that will get no certificate (the upstream refused it,
   * or it can no longer be forwarded): refused, and the passcode use it took
   * given back, so uses always equal requests that got or will get one.
   */
  async refuseAccepted(record: NewRequest, error: EstError): Promise<void> {
    const refundPasscodeUse = record.principal.kind === 'passcode' ? record.principal.passcodeId : undefined;
    await this.store.recordRefused(record, this.now(), error.status, error.reason, { refundPasscodeUse });
  }

  /**
   * The one place a refusal is recorded, by whichever step made it: the
   * status and the reason the client was given, whether or not the request
   * was recorded as received before.
   */
  async recordRefusal(record: NewRequest, error: EstError): Promise<void> {
    await this.store.recordRefused(record, this.now(), error.status, error.reason);
  }

  /**
   * A refusal before the client was authenticated: there is nobody to record
   * a request for, so it is counted per address, profile, operation and code
   * per hour, and a scanner's thousands of refusals a second take a row an
   * hour, not a row each.
   */
  async countRefusal(request: Pick<NewRequest, 'peerAddress' | 'profile' | 'operation'>, error: EstError): Promise<void> {
    await this.store.countRefusal({
      address: request.peerAddress,
      profile: request.profile,
      operation: request.operation,
      code: error.code,
      status: error.status,
      reason: error.reason,
      at: this.now(),
    });
  }

  /** What a device is told when the upstream could not issue a server-generated key's certificate at once. */
  private async serverKeygenFailure(profile: Profile, err: unknown): Promise<EstError> {
    if (err instanceof UpstreamUnavailableError) {
      const retryAt = await this.health.failed(profile.name, this.now());
      return serverKeygenUnavailable(this.retryAfterFor(retryAt.toISOString()), err);
    }
    if (err instanceof EstError && err.code === 'EST_PENDING') {
      return new EstError('EST_UPSTREAM_DEFERRED', {
        reason: `the upstream CA did not issue at once (202: ${err.reason}); est-ra keeps no server-generated key to wait with`,
        cause: err,
      });
    }
    return err instanceof EstError ? err : new EstError('EST_INTERNAL', { cause: err });
  }

  /** Seconds a device should wait: until the next attempt, at least 1 s, at most 10 min. */
  private retryAfterFor(nextAttemptAt: string | null): number {
    const at = nextAttemptAt ? Date.parse(nextAttemptAt) : Number.NaN;
    const seconds = Number.isNaN(at) ? 5 : Math.ceil((at - this.now().getTime()) / 1000) + 1;
    return Math.min(600, Math.max(1, seconds));
  }
}

function serverKeygenUnavailable(retryAfter: number, cause?: unknown): EstError {
  return new EstError('EST_UPSTREAM_UNAVAILABLE', {
    reason: 'the upstream CA is unreachable; a server-generated key is never queued: send the request again later',
    retryAfter,
    cause,
  });
}

/**
 * The type of the key est-ra makes: the profile's only allowed type, or
 * among several the type of the CSR's key (RFC 7030 §4.4.1: the CSR's key
 * is a template; the key type rule has checked it is allowed).
 */
export function serverKeyType(profile: Pick<Profile, 'allowedKeyTypes'>, csr: VerifiedCsr): string {
  return profile.allowedKeyTypes.length === 1 ? profile.allowedKeyTypes[0]! : csr.keyType;
}

/** The decided names as DER: the CSR's own encoding when they are what it asked for, as the local CA issues them. */
function serverKeyNames(csr: VerifiedCsr, names: IssuedNames): ServerKeyNames {
  if (names.asRequested) return { subjectDer: csr.subjectDer, subjectAltName: csr.subjectAltName };
  return {
    subjectDer: encodeSubject(names.subject),
    subjectAltName: names.san.length > 0 ? encodeSubjectAltName(names.san, names.subject.length === 0) : undefined,
  };
}
