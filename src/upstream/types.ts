import type { Agent } from 'node:https';
import { EstError } from '../errors.js';
import type { x509 } from '../pki/x509.js';
import type { CertificateView } from '../pki/certificate-view.js';
import type { VerifiedCsr } from '../pki/csr.js';
import type { IssuedNames } from '../pki/names.js';

/** What a request carries to the upstream besides the CSR, for its records and logs. */
export interface EnrollContext {
  readonly requestId: string;
  readonly profile: string;
}

/** A certificate an upstream issued, with the fields est-ra records. */
export interface IssuedCertificate {
  readonly der: Buffer;
  /** Hex, as openssl and @peculiar/x509 print it. */
  readonly serialNumber: string;
  /** RFC 4514 string of the subject. */
  readonly subject: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/**
 * The upstream could not be reached or failed on its side (connection
 * refused or reset, timeout, 5xx): an enrollment stays queued and is sent
 * again later (store and forward); a /cacerts with nothing cached is a 503.
 * Not the device's fault.
 */
export class UpstreamUnavailableError extends EstError {
  /**
   * False only when the request certainly never reached the upstream's
   * issuing logic (no connection, TLS refused, or an answer that says it was
   * not processed: 408, 429, 503); a timeout, a reset or another 5xx leave the
   * outcome unknown, and the request may be issued twice if sent again.
   */
  readonly mayHaveReachedUpstream: boolean;

  constructor(reason: string, options?: { cause?: unknown; mayHaveReachedUpstream?: boolean }) {
    super('EST_UPSTREAM_UNAVAILABLE', { reason, cause: options?.cause, retryAfter: 30 });
    this.name = 'UpstreamUnavailableError';
    this.mayHaveReachedUpstream = options?.mayHaveReachedUpstream ?? true;
  }
}

/** An upstream's /fullcmc, reached over est-ra's own RA identity (the TLS agent the other operations use). */
export interface FullCmcRoute {
  readonly url: string;
  readonly agent: Agent;
  /** HTTP Basic towards the upstream, when the profile configures it; the device's own credentials never go up. */
  readonly authorization?: string;
  readonly timeoutMs: number;
}

/**
 * Where certificates come from: one method per RFC 7030 operation.
 * Implemented by `local-ca.ts` (embedded CA) and `est.ts` (an upstream
 * RFC 7030 server reached with the RA's TLS identity).
 *
 * Enrollment methods resolve with a certificate that has been checked, throw
 * `EstError.pending(retryAfter)` when the upstream answers 202 (RFC 7030
 * §4.2.3), `UpstreamUnavailableError` when it cannot be reached, or another
 * EstError when the request is refused.
 */
export interface Upstream {
  /** The CA certificates a device should trust (RFC 7030 §4.1.3), issuing CA first. */
  caCertificates(): Promise<readonly x509.X509Certificate[]>;
  /**
   * Issue a certificate for a new enrollment (RFC 7030 §4.2.1) with the names
   * the profile decided. A CA that builds the certificate issues exactly
   * those; one that is sent the CSR unchanged gets a CSR the policy step
   * has checked asks for nothing else.
   */
  simpleEnroll(csr: VerifiedCsr, context: EnrollContext, names: IssuedNames): Promise<IssuedCertificate>;
  /**
   * Renew `current`, which the client proved it holds over TLS (RFC 7030 §4.2.2):
   * the new certificate keeps its subject and subjectAltName, whatever the CSR says.
   * Undefined when a downstream RA renews on a device's behalf (RFC 7030 §3.7):
   * the RA has checked the CSR's identity against the old certificate and vouches for it.
   */
  simpleReenroll(current: CertificateView | undefined, csr: VerifiedCsr, context: EnrollContext): Promise<IssuedCertificate>;
  /** The upstream's own CSR attributes (RFC 7030 §4.5), DER, or undefined for none. */
  csrAttrs?(): Promise<Buffer | undefined>;
  /** Where /fullcmc is relayed (RFC 7030 §4.3): only an RFC 7030 upstream has one. */
  fullCmcRoute?(): FullCmcRoute;
  /** est-ra's own RA certificate towards this upstream, if it has one (metrics, /readyz). */
  raCertificate?(): { readonly subject: string; readonly notBefore: Date; readonly notAfter: Date } | undefined;
  /** Stops background work (cache refresh) and closes connections. */
  close?(): void;
}
