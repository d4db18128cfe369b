import type { x509 } from '../pki/x509.js';
import type { VerifiedCsr } from '../pki/csr.js';

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
 * Where certificates come from: one method per RFC 7030 operation.
 * Implemented by `local-ca.ts` (embedded CA) and, later, `est.ts`
 * (an upstream RFC 7030 server reached with the RA's TLS identity).
 */
export interface Upstream {
  /** The CA certificates a device should trust (RFC 7030 §4.1.3), as DER, issuing CA first. */
  caCertificates(): Promise<readonly Buffer[]>;
  /** Issue a certificate for a new enrollment (RFC 7030 §4.2.1). */
  simpleEnroll(csr: VerifiedCsr, context: EnrollContext): Promise<IssuedCertificate>;
  /**
   * Renew `current`, which the client proved it holds over TLS (RFC 7030 §4.2.2):
   * the new certificate keeps its subject and subjectAltName, whatever the CSR says.
   */
  simpleReenroll(current: x509.X509Certificate, csr: VerifiedCsr, context: EnrollContext): Promise<IssuedCertificate>;
}
