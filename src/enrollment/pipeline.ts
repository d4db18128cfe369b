import { createHash } from 'node:crypto';
import { EstError } from '../errors.js';
import { authenticateEnroll, authenticateReenroll, type ClientCredentials } from '../auth/authenticate.js';
import { decodeDerBody } from '../pki/der-body.js';
import { parseAndVerifyCsr } from '../pki/csr.js';
import { decide } from '../policy/decide.js';
import type { Profile, ProfileDirectory } from '../policy/profile.js';
import { checkRenewalOrigin } from '../policy/renewal-origin.js';
import type { NewRequest, Operation, Principal, Store } from '../store/types.js';
import type { Enrollment, EnrollmentService } from './service.js';
import type { RefusalLimiter } from '../ops/refusal-budget.js';
import type { VerifiedCsr } from '../pki/csr.js';
import { CertificateView } from '../pki/certificate-view.js';
import { isKeyIdentifierOf } from '../pki/server-key.js';

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
    let decision;
    let csr;
    let current;
    let keyRecipient: Buffer | undefined;
    try {
      const now = record.receivedAt;
      const identity =
        operation === 'simplereenroll'
          ? await authenticateReenroll(profile, request.credentials, now)
          : { principal: await authenticateEnroll(this.store, profile, request.credentials, now), certificate: undefined };
      current = identity.certificate;
      record.principal = identity.principal;
      observe.principal(record.principal);
      if (identity.principal.kind === 'passcode') {
        const wait = this.passcodeRefusals.retryAfter(identity.principal.passcodeId, record.receivedAt.getTime());
        if (wait !== undefined) {
          throw new EstError('EST_TOO_MANY_REFUSALS', { reason: 'too many refused requests with this passcode; retry later', retryAfter: wait });
        }
      }
      if (current) await checkRenewalOrigin(this.store, this.profiles, profile, current, identity.caPath ?? []);
      record.csr = decodeDerBody(request.body);
      // /serverkeygen: "the server MUST ignore the public key values and signature in the CSR" (RFC 7030 §4.4.1);
      // they are there so clients can reuse their CSR code. The key's type is still read (a template).
      csr = await parseAndVerifyCsr(record.csr, { signatureVerified: operation === 'serverkeygen' });
      // A downstream RA enrolls for a device: record both, the RA's certificate and the device the CSR names.
      if (identity.principal.kind === 'ra') {
        record.principal = { ...identity.principal, device: csr.subject };
        observe.principal(record.principal);
      }
      decision = decide(profile, { operation, csr, principal: record.principal, current, channelBinding: request.credentials.channelBinding, now });
      if (operation === 'serverkeygen') keyRecipient = keyEncryptionRecipient(csr, request.credentials.clientCertificate);
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
