import { createHash } from 'node:crypto';
import { EstError } from '../errors.js';
import { authenticateEnroll, authenticateReenroll, type ClientCredentials, type PasscodeAuthenticator } from '../auth/authenticate.js';
import { decodeDerBody } from '../pki/der-body.js';
import { parseAndVerifyCsr, type VerifiedCsr } from '../pki/csr.js';
import { decide, type Decision } from '../policy/decide.js';
import type { DecisionTrace } from '../policy/rules.js';
import type { Profile, ProfileDirectory } from '../policy/profile.js';
import { checkRenewalOrigin } from '../policy/renewal-origin.js';
import type { NewRequest, Operation, Principal, Store } from '../store/types.js';
import type { Enrollment, EnrollmentService } from './service.js';
import type { RefusalLimiter } from '../ops/refusal-budget.js';
import { CertificateView } from '../pki/certificate-view.js';
import { isKeyIdentifierOf } from '../pki/server-key.js';
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

/** An enrollment's outcome as the HTTP layer renders it. */
export interface PipelineEnrollment extends Enrollment {
  /** /serverkeygen: the certificate to encrypt the new private key to (DER), when the CSR asked for that. */
  readonly keyRecipient?: Buffer;
}

/** A /fullcmc request to relay (RFC 7030 §4.3), as the HTTP layer hands it over. */
export interface FullCmcRequest {
  readonly id: string;
  readonly profile: Profile;
  readonly peerAddress: string;
  readonly credentials: ClientCredentials;
  readonly body: Buffer;
  /** The Content-Type says CMC-request (est/media-types.ts isCmcRequest). */
  readonly isCmcRequest: boolean;
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
  async enroll(request: EnrollmentRequest, observe: EnrollmentObserver): Promise<PipelineEnrollment> {
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
    let keyRecipient: Buffer | undefined;
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
      if (operation === 'serverkeygen') keyRecipient = keyEncryptionRecipient(screened.csr, request.credentials.clientCertificate);
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
      const enrollment = await this.service.enroll(profile, { ...record, csr, current, names: decision.names }, (id) => observe.request(id));
      return { ...enrollment, keyRecipient };
    } catch (err) {
      if (err instanceof EstError) this.countAgainstPasscode(record.principal, err);
      throw err;
    }
  }

  /**
   * /fullcmc passthrough: authenticates the device as for simpleenroll,
   * checks the media type, then `relay` sends the body up unchanged. The CMC
   * itself is not parsed: the upstream is the CA that reads it. Recorded
   * like every request, finished in one write: the body's SHA-256 (to find
   * it in the upstream's logs), who sent it and the upstream's status. No
   * passcode use is taken: est-ra cannot tell whether a CMC request enrolls
   * (it may as well revoke or poll).
   */
  async relayFullCmc<T extends { readonly status: number }>(
    request: FullCmcRequest,
    observe: Pick<EnrollmentObserver, 'principal'>,
    relay: () => Promise<T>,
  ): Promise<T> {
    const record: { -readonly [K in keyof NewRequest]: NewRequest[K] } = {
      id: request.id,
      receivedAt: this.now(),
      profile: request.profile.name,
      peerAddress: request.peerAddress,
      principal: { kind: 'none' },
      operation: 'fullcmc',
      csrSha256: createHash('sha256').update(request.body).digest('hex'),
    };
    try {
      record.principal = await authenticateEnroll(this.store, request.profile, request.credentials, record.receivedAt);
      observe.principal(record.principal);
      if (record.principal.kind === 'passcode') {
        const wait = this.passcodeRefusals.retryAfter(record.principal.passcodeId, record.receivedAt.getTime());
        if (wait !== undefined) {
          throw new EstError('EST_TOO_MANY_REFUSALS', { reason: 'too many refused requests with this passcode; retry later', retryAfter: wait });
        }
      }
      if (!request.isCmcRequest) throw new EstError('EST_CONTENT_TYPE', { reason: 'fullcmc takes application/pkcs7-mime; smime-type=CMC-request' });
      if (request.body.length === 0) throw EstError.badRequest('EST_BODY_MALFORMED', 'the fullcmc request body is empty');
    } catch (err) {
      const error = err instanceof EstError ? err : new EstError('EST_INTERNAL', { cause: err });
      if (error.code === 'EST_AUTH_REQUIRED') throw error;
      this.countAgainstPasscode(record.principal, error);
      if (record.principal.kind === 'none') await this.service.countRefusal(record, error);
      else await this.service.recordRefusal(record, error);
      throw error;
    }
    let answer: T;
    try {
      answer = await relay();
    } catch (err) {
      const error = err instanceof EstError ? err : new EstError('EST_INTERNAL', { cause: err });
      await this.store.recordRelayed(record, this.now(), error.status, error.reason);
      throw error;
    }
    await this.store.recordRelayed(record, this.now(), answer.status, `fullcmc relayed; the upstream answered ${answer.status}`);
    return answer;
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

/**
 * The certificate a server-generated key is encrypted to, when the CSR asks
 * (RFC 7030 §4.4.1.1–2). AsymmetricDecryptKeyIdentifier: the TLS client
 * certificate of this connection, when it is the key the identifier names;
 * the client proved it holds that key in the handshake, so only it can open
 * the answer, whether or not the certificate is one est-ra trusts.
 * DecryptKeyIdentifier names a symmetric key shared beforehand, which
 * est-ra has no way to be given: refused, rather than answered with the key
 * protected by TLS alone when the client asked for more.
 */
function keyEncryptionRecipient(csr: VerifiedCsr, clientCertificate: Buffer | undefined): Buffer | undefined {
  const asked = csr.decryptKeyIdentifier;
  if (!asked) return undefined;
  const refuse = (reason: string): EstError => new EstError('EST_KEY_ENCRYPTION', { reason });
  if (asked.kind === 'symmetric')
    throw refuse(
      'the CSR asks for the key encrypted with a shared symmetric key (DecryptKeyIdentifier, RFC 7030 §4.4.1.1); est-ra holds none: leave it out or use AsymmetricDecryptKeyIdentifier',
    );
  let certificate: CertificateView | undefined;
  try {
    certificate = clientCertificate && CertificateView.parse(clientCertificate);
  } catch {
    certificate = undefined;
  }
  if (!certificate || !isKeyIdentifierOf(certificate, asked.identifier))
    throw refuse(
      `AsymmetricDecryptKeyIdentifier ${asked.identifier.toString('hex')} is not the key of this connection's TLS client certificate: present that certificate (RFC 7030 §4.4.1.2)`,
    );
  return certificate.der;
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
  // /serverkeygen: "the server MUST ignore the public key values and signature in the CSR" (RFC 7030 §4.4.1);
  // they are there so clients can reuse their CSR code. The key's type is still read (a template).
  const csr = await parseAndVerifyCsr(der, { signatureVerified: operation === 'serverkeygen' });
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
