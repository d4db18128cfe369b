import type { CertificateView } from '../pki/certificate-view.js';
import { issuerKey, verifySignedDer } from '../pki/signature.js';

export type CertificateCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Checks that a certificate was issued by `issuer` and is within its
 * validity at `now` (RFC 5280 §6.1.3 (a)(1)-(2) for one step of a path).
 * For a TLS client certificate the handshake has already proved the client
 * holds its private key. Returns a result; the caller decides the status.
 * `validityDecidedByCaller` leaves the validity period to a caller with its
 * own rules (renewal).
 */
export async function checkIssuedBy(
  certificate: CertificateView,
  issuer: CertificateView,
  now: Date,
  options: { validityDecidedByCaller?: boolean } = {},
): Promise<CertificateCheck> {
  if (!certificate.issuerDer.equals(issuer.subjectDer)) {
    return { ok: false, reason: "certificate was not issued by this profile's CA" };
  }
  let signed: boolean;
  try {
    signed =
      (await verifySignedDer(certificate.der, issuerKey(issuer))) ?? (await certificate.x509.verify({ publicKey: issuer.x509.publicKey, signatureOnly: true }));
  } catch {
    // A signature value OpenSSL cannot even decode is a signature that does not verify.
    signed = false;
  }
  if (!signed) {
    return { ok: false, reason: "certificate signature does not verify against this profile's CA" };
  }
  // Renewal decides about expired certificates itself (renewal_settings).
  if (options.validityDecidedByCaller) return { ok: true };
  if (now < certificate.notBefore) return { ok: false, reason: `certificate is not valid before ${certificate.notBefore.toISOString()}` };
  if (now > certificate.notAfter) return { ok: false, reason: `certificate expired ${certificate.notAfter.toISOString()}` };
  return { ok: true };
}
