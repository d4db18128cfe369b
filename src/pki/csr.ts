import { verify } from 'node:crypto';
import { bytes, x509 } from './x509.js';
import { EstError } from '../errors.js';
import { keyTypeOf } from './key-type.js';
import { children, objectIdentifier } from './der.js';

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
 * Signature algorithms whose check goes straight to node:crypto, keyed by the
 * DER of their OID, with the digest to use (null: EdDSA hashes internally).
 * Why: @peculiar/x509's verify() imports the key through WebCrypto, which
 * `npm run bench` measured at ~0.6 ms per CSR against ~0.4 ms this way.
 * Anything else (RSA-PSS, ...) is still verified by the library.
 */
const DIRECT_VERIFY = new Map<string, string | null>(
  (
    [
      ['1.2.840.10045.4.1', 'sha1'],
      ['1.2.840.10045.4.3.2', 'sha256'],
      ['1.2.840.10045.4.3.3', 'sha384'],
      ['1.2.840.10045.4.3.4', 'sha512'],
      ['1.2.840.113549.1.1.5', 'sha1'],
      ['1.2.840.113549.1.1.11', 'sha256'],
      ['1.2.840.113549.1.1.12', 'sha384'],
      ['1.2.840.113549.1.1.13', 'sha512'],
      ['1.3.101.112', null],
      ['1.3.101.113', null],
    ] as const
  ).map(([oid, hash]) => [objectIdentifier(oid).toString('hex'), hash]),
);

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
    signatureValid = await verifySignature(der, request);
  } catch (cause) {
    // A key the crypto library cannot load (unknown curve, point not on the
    // curve) is still the client's request at fault.
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

/** CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature BIT STRING } */
function verifySignature(der: Buffer, request: x509.Pkcs10CertificateRequest): Promise<boolean> {
  // The library has parsed `der` already, so its three fields are well formed.
  const [info, algorithm, signature] = children(der);
  const [algorithmOid] = children(der, algorithm);
  const hash = DIRECT_VERIFY.get(der.subarray(algorithmOid!.offset, algorithmOid!.end).toString('hex'));
  if (hash === undefined) return request.verify();
  const signed = der.subarray(info!.offset, info!.end);
  const signatureValue = der.subarray(signature!.start + 1, signature!.end); // after the unused-bits byte
  const key = { key: Buffer.from(request.publicKey.rawData), format: 'der', type: 'spki' } as const;
  return new Promise((resolve, reject) => {
    verify(hash, signed, key, signatureValue, (err, ok) => (err ? reject(err) : resolve(ok)));
  });
}
