import { EstError } from '../errors.js';
import { authenticateEnroll, authenticateReenroll, type ClientCredentials, type PasscodeAuthenticator } from '../auth/authenticate.js';
import { decodeDerBody } from '../pki/der-body.js';
import { parseAndVerifyCsr, type VerifiedCsr } from '../pki/csr.js';
import { decide, type Decision } from '../policy/decide.js';
import type { DecisionTrace } from '../policy/rules.js';
import type { CertificateView } from '../pki/certificate-view.js';
import type { Profile, ProfileDirectory } from '../policy/profile.js';
import { checkRenewalOrigin } from '../policy/renewal-origin.js';
import type { NewRequest, Operation, Principal, Store } from '../store/types.js';
import type { Enrollment, EnrollmentService } from './service.js';
import type { RefusalLimiter } from '../ops/refusal-budget.js';
import { unmapIPv4 } from '../auth/allowlist.js';

/** What the HTTP layer learns as an enrollment goes, for the request's log line and answer. */
export interface EnrollmentObserver {
  /** Who asked, as soon as that is known. */
  principal(principal: Principal): void;
  /** The recorded request this exchange belongs to: its own id when new, the earlier request's when a device retries. */
  request(requestId: string): void;
}

/** An enrollment as the HTTP layer hands it over: no express, no sockets. */
export interface EnrollmentRequest {
  readonly id: string;
  readonly operation: Operation;
  readonly profile: Profile;
  readonly peerAddress: string;
  readonly credentials: ClientCredentials;
  /** The request body as received: base64, PEM or DER. */
  readonly body: Buffer;
}

/**
 * One enrollment, start to end, in the order RFC 7030 and the profile ask:
 *
 *   authenticate → decode → decide → record → upstream → verify → record
 *
 * est/ hands over an HTTP-free request and renders what comes back;
 * authentication is auth/, the decision policy/, recording, forwarding and
 * the check of the answer EnrollmentService (service.ts) with the upstream.
 * Every refusal is recorded through EnrollmentService: counted
 * (countRefusal) before authentication, recorded (recordRefusal) after.
 */
export class EnrollmentPipeline {
  constructor(
    private readonly store: Store,
    private readonly profiles: ProfileDirectory,
    private readonly service: EnrollmentService,
    private readonly now: () => Date,
    /** Refused requests per passcode per minute (429 past the budget). */
    private readonly passcodeRefusals: RefusalLimiter,
  ) {}

  /**
   * Resolves with the certificate, or throws the refusal (or
   * EstError.pending). `observe` learns who asked and which recorded request
   * this is, for the request's log line and answer.
   */
  async enroll(request: EnrollmentRequest, observe: EnrollmentObserver): Promise<Enrollment> {
    const { profile, operation } = request;
    const record: { -readonly [K in keyof NewRequest]: NewRequest[K] } = {
      id: request.id,
      receivedAt: this.now(),
      profile: profile.name,
      peerAddress: request.peerAddress,
      principal: { kind: 'none' },
      operation,
    };
    let screened;
    try {
      screened = await screenEnrollment({ store: this.store, profiles: this.profiles, passcodeRefusals: this.passcodeRefusals }, request, record.receivedAt, {
        principal: (principal) => {
          record.principal = principal;
          observe.principal(principal);
        },
        decoded: (csr) => {
          record.csr = csr;
        },
      });
    } catch (err) {
      // A bare first attempt without credentials is the client asking for the
      // challenge (libest always does this), not a request to record.
      const error = err instanceof EstError ? err : new EstError('EST_INTERNAL', { cause: err });
      if (error.code === 'EST_AUTH_REQUIRED') throw error;
      this.countAgainstPasscode(record.principal, error);
      if (record.principal.kind === 'none') await this.service.countRefusal(record, error);
      else await this.service.recordRefusal(record, error);
      throw error;
    }
    // From here on the enrollment service records what happens.
    const { csr, current, decision } = screened;
    try {
      return await this.service.enroll(profile, { ...record, csr, current, names: decision.names }, (id) => observe.request(id));
    } catch (err) {
      if (err instanceof EstError) this.countAgainstPasscode(record.principal, err);
      throw err;
    }
  }

  /** A client's mistake or a refusal made to a passcode holder counts against that passcode's budget. */
  private countAgainstPasscode(principal: Principal, error: EstError): void {
    if (principal.kind === 'passcode' && error.status >= 400 && error.status < 500 && error.code !== 'EST_TOO_MANY_REFUSALS') {
      this.passcodeRefusals.refused(principal.passcodeId, this.now().getTime());
    }
  }

  /**
   * allowed_ip_addresses said no, before the body was read and before any
   * challenge (DigiCert's usage restriction): counted like any refusal before authentication.
   */
  async refuseAddress(request: Omit<EnrollmentRequest, 'credentials' | 'body'>, error: EstError): Promise<never> {
    await this.service.countRefusal({ peerAddress: request.peerAddress, profile: request.profile.name, operation: request.operation }, error);
    throw error;
  }
}

/** What screenEnrollment tells as it goes: who asked, the CSR as decoded, and (simulate) each step before it is taken. */
export interface ScreeningTrace extends Partial<DecisionTrace> {
  principal(principal: Principal): void;
  decoded?(csr: Buffer): void;
}

/** A request that passed every check before recording: who, the verified CSR, what it renews, and the decision. */
export interface ScreenedEnrollment {
  readonly principal: Principal;
  readonly csr: VerifiedCsr;
  readonly current: CertificateView | undefined;
  readonly decision: Decision;
}

/**
 * Everything before a request is recorded, in order: authenticate
 * (`authentication`), the passcode's refusal budget, the profile a renewed
 * certificate belongs to (`renewalOrigin`), decode and verify the CSR
 * (`csr`), decide (policy/decide.ts: its steps). It reads the store
 * (passcodes, issued certificates) and writes nothing: the pipeline records
 * what comes of it, `est-ra simulate` prints it. Throws the refusal.
 */
export async function screenEnrollment(
  deps: {
    readonly store: Store;
    readonly profiles: ProfileDirectory;
    readonly passcodeRefusals?: RefusalLimiter;
    /** How a passcode authenticates: the Basic header unless simulate names one by id. */
    readonly authenticatePasscode?: PasscodeAuthenticator;
  },
  request: Omit<EnrollmentRequest, 'id'>,
  now: Date,
  trace: ScreeningTrace,
): Promise<ScreenedEnrollment> {
  const { profile, operation } = request;
  trace.step?.('authentication');
  const identity =
    operation === 'simplereenroll'
      ? await authenticateReenroll(profile, request.credentials, now)
      : { principal: await authenticateEnroll(deps.store, profile, request.credentials, now, deps.authenticatePasscode), certificate: undefined };
  let principal = identity.principal;
  const current = identity.certificate;
  trace.principal(principal);
  if (principal.kind === 'passcode') {
    const wait = deps.passcodeRefusals?.retryAfter(principal.passcodeId, now.getTime());
    if (wait !== undefined) {
      throw new EstError('EST_TOO_MANY_REFUSALS', { reason: 'too many refused requests with this passcode; retry later', retryAfter: wait });
    }
  }
  if (current) {
    trace.step?.('renewalOrigin');
    await checkRenewalOrigin(deps.store, deps.profiles, profile, current, identity.caPath ?? []);
  }
  trace.step?.('csr');
  const der = decodeDerBody(request.body);
  trace.decoded?.(der);
  const csr = await parseAndVerifyCsr(der);
  // A downstream RA enrolls for a device: record both, the RA's certificate and the device the CSR names.
  if (principal.kind === 'ra') {
    principal = { ...principal, device: csr.subject };
    trace.principal(principal);
  }
  const step = trace.step;
  const decision = decide(
    profile,
    { operation, csr, principal, current, channelBinding: request.credentials.channelBinding, now },
    step ? { step: (name) => step(name) } : undefined,
  );
  return { principal, csr, current, decision };
}

/**
 * allowed_ip_addresses (DigiCert's usage restriction): the refusal for a
 * client address the profile does not allow, undefined when it does. The
 * router asks before the body is read; `est-ra simulate` for `--peer`.
 */
export function addressRefusal(profile: Profile, peerAddress: string): EstError | undefined {
  if (profile.allowlist.allows(peerAddress)) return undefined;
  return EstError.forbidden('EST_ADDRESS_NOT_ALLOWED', `client address ${unmapIPv4(peerAddress)} not allowed by profile '${profile.name}'`);
}
