import { EstError } from '../errors.js';
import { parseCertsOnly } from '../pki/certs-only.js';
import { whatIsWrong } from '../pki/der.js';
import type { x509 } from '../pki/x509.js';
import { CertificateView, viewOf } from '../pki/certificate-view.js';
import { checkIssuedBy } from '../auth/client-certificate.js';
import { identityOf, sameIdentity, type CertificateIdentity } from '../pki/identity.js';
import type { IssuedCertificate } from './types.js';

export interface IssuedExpectation {
  /** DER SubjectPublicKeyInfo of the CSR: the issued certificate must carry this key. */
  readonly subjectPublicKeyInfo: Buffer;
  /** The profile's CA certificates: the issued certificate must be signed by one of them. */
  readonly caCertificates: readonly x509.X509Certificate[];
  /** On renewal: the identity the new certificate must keep (RFC 7030 §4.2.2). */
  readonly identity?: CertificateIdentity;
  readonly now: Date;
}

const invalid = (reason: string, cause?: unknown): EstError => new EstError('EST_UPSTREAM_INVALID', { reason: `upstream answer rejected: ${reason}`, cause });

/**
 * Checks an upstream's certs-only answer before a device sees it: it parses,
 * it holds a certificate for the CSR's key, that certificate chains to the
 * profile's CA and is valid now, and on renewal it keeps the old identity.
 */
export async function verifyIssued(certsOnly: Buffer, expected: IssuedExpectation): Promise<IssuedCertificate> {
  let certificates: CertificateView[];
  try {
    certificates = parseCertsOnly(certsOnly).map((der) => CertificateView.parse(der));
  } catch (cause) {
    throw invalid(`not a certs-only PKCS#7 of DER certificates: ${whatIsWrong(cause)}`, cause);
  }
  const issued = certificates.find((c) => c.subjectPublicKeyInfo.equals(expected.subjectPublicKeyInfo));
  if (!issued) throw invalid(certificates.length === 0 ? 'no certificate in it' : "the certificate is not for the CSR's key");
  const chains = await Promise.all(expected.caCertificates.map((ca) => checkIssuedBy(issued, viewOf(ca), expected.now)));
  const chained = chains.find((check) => check.ok);
  if (!chained)
    throw invalid(`the certificate ${chains[0] && !chains[0].ok ? `is not acceptable: ${chains[0].reason}` : "does not chain to the profile's CA"}`);
  if (expected.identity && !sameIdentity(identityOf(issued), expected.identity)) {
    throw invalid('the renewed certificate does not keep the identity of the certificate it renews');
  }
  return issued;
}
