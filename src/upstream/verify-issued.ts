import { EstError } from '../errors.js';
import { parseCertsOnly } from '../pki/certs-only.js';
import { whatIsWrong } from '../pki/der.js';
import type { x509 } from '../pki/x509.js';
import { CertificateView, viewOf } from '../pki/certificate-view.js';
import { validatePath } from '../pki/path-validation.js';
import { identityOf, sameIdentity, type CertificateIdentity } from '../pki/identity.js';
import type { IssuedCertificate } from './types.js';
import { SIGNATURE_ALGORITHMS, type SignatureAlgorithmName } from '../pki/certificate-signer.js';
import { signatureAlgorithmOid } from '../pki/signature.js';
import { children, dottedOid } from '../pki/der.js';

/** The OID inside an AlgorithmIdentifier we encoded ourselves. */
function objectIdentifierOf(algorithmIdentifier: Buffer): string {
  return dottedOid(algorithmIdentifier, children(algorithmIdentifier)[0]!);
}

export interface IssuedExpectation {
  /** DER SubjectPublicKeyInfo of the CSR: the issued certificate must carry this key. */
  readonly subjectPublicKeyInfo: Buffer;
  /** The profile's CA certificates: the issued certificate must be signed by one of them. */
  readonly caCertificates: readonly x509.X509Certificate[];
  /** On renewal: the identity the new certificate must keep (RFC 7030 §4.2.2). */
  readonly identity?: CertificateIdentity;
  /** The profile's signature_algorithm list, when it is not match_issuer. */
  readonly signatureAlgorithms?: readonly SignatureAlgorithmName[];
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
  // The other certificates of the answer may complete the path (an issuing CA under the configured root).
  const path = await validatePath({
    certificate: issued,
    anchors: expected.caCertificates.map(viewOf),
    intermediates: certificates.filter((c) => c !== issued).map((c) => c.der),
    now: expected.now,
  });
  if (!path.ok)
    throw invalid(`the certificate is not acceptable: ${path.code === 'no_path' ? "certificate was not issued by this profile's CA" : path.reason}`);
  if (expected.signatureAlgorithms) {
    const used = signatureAlgorithmOid(issued.der);
    const allowed = expected.signatureAlgorithms.filter((name) => objectIdentifierOf(SIGNATURE_ALGORITHMS[name].algorithmIdentifier) === used);
    if (allowed.length === 0) throw invalid(`the certificate is signed with ${used}; the profile allows ${expected.signatureAlgorithms.join(', ')}`);
  }
  if (expected.identity && !sameIdentity(identityOf(issued), expected.identity)) {
    throw invalid('the renewed certificate does not keep the identity of the certificate it renews');
  }
  return issued;
}
