import { bytes, x509 } from './x509.js';
import { EstError } from '../errors.js';
import { keyTypeOf } from './key-type.js';

/** A PKCS#10 request that parsed and whose signature verified. */
export interface VerifiedCsr {
  readonly der: Buffer;
  readonly request: x509.Pkcs10CertificateRequest;
  readonly subject: string;
  /** A KeyType name such as p_256, or a description of a key outside that list. */
  readonly keyType: string;
  /** SubjectAltName requested in the extensionRequest attribute, if any. */
  readonly subjectAltName?: x509.SubjectAlternativeNameExtension;
}

/**
 * Parses a DER PKCS#10 request (RFC 2986) and checks its self-signature, which
 * is the proof that the requester holds the private key (RFC 7030 §3.4).
 * Library errors become `400 malformed PKCS#10 request`.
 *
 * @example
 * const csr = await parseAndVerifyCsr(der);
 * csr.keyType; // 'p_256'
 */
export async function parseAndVerifyCsr(der: Buffer): Promise<VerifiedCsr> {
  let request: x509.Pkcs10CertificateRequest;
  let keyType: string;
  try {
    request = new x509.Pkcs10CertificateRequest(bytes(der));
    keyType = keyTypeOf(request.publicKey);
  } catch (cause) {
    throw EstError.badRequest('EST_CSR_MALFORMED', undefined, cause);
  }
  let signatureValid: boolean;
  try {
    signatureValid = await request.verify();
  } catch (cause) {
    // WebCrypto refuses keys it cannot import (unknown curve, broken point):
    // still the client's request that is at fault.
    throw EstError.badRequest('EST_CSR_SIGNATURE', `CSR signature cannot be verified for key type ${keyType}`, cause);
  }
  if (!signatureValid) throw EstError.badRequest('EST_CSR_SIGNATURE');
  return {
    der,
    request,
    subject: request.subject,
    keyType,
    subjectAltName: request.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension),
  };
}
