import type { x509 } from '../pki/x509.js';
import { issuerKey, verifySignedDer } from '../pki/signature.js';

export type CertificateCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Checks that a TLS client certificate was issued by `issuer` and is within
 * its validity at `now` (RFC 5280 §6.1.3 (a)(1)-(2) for a one-step path).
 * The TLS handshake has already proved the client holds its private key.
 * Returns a result; the caller decides the status. `validityDecidedByCaller`
 * leaves the validity period to a caller with its own rules (renewal).
 */
export async function checkIssuedBy(
  certificate: x509.X509Certificate,
  issuer: x509.X509Certificate,
  now: Date,
  options: { validityDecidedByCaller?: boolean } = {},
): Promise<CertificateCheck> {
  if (!Buffer.from(certificate.issuerName.toArrayBuffer()).equals(Buffer.from(issuer.subjectName.toArrayBuffer()))) {
    return { ok: false, reason: "certificate was not issued by this profile's CA" };
  }
  const signed =
    (await verifySignedDer(Buffer.from(certificate.rawData), issuerKey(issuer))) ??
    (await certificate.verify({ publicKey: issuer.publicKey, signatureOnly: true }));
  if (!signed) {
    return { ok: false, reason: "certificate signature does not verify against this profile's CA" };
  }
  // Renewal decides about expired certificates itself (renewal_settings).
  if (options.validityDecidedByCaller) return { ok: true };
  if (now < certificate.notBefore) return { ok: false, reason: `certificate is not valid before ${certificate.notBefore.toISOString()}` };
  if (now > certificate.notAfter) return { ok: false, reason: `certificate expired ${certificate.notAfter.toISOString()}` };
  return { ok: true };
}
