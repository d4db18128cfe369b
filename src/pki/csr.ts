import { verify } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { Extensions, id_ce_subjectAltName } from '@peculiar/asn1-x509';
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
  /** DER Name of the requested subject. */
  readonly subjectDer: Buffer;
  /** DER SubjectPublicKeyInfo. */
  readonly subjectPublicKeyInfo: Buffer;
  /** DER of the subjectAltName Extension requested in the extensionRequest attribute, if any. */
  readonly subjectAltName?: Buffer;
}

const ID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';

/**
 * Signature algorithms whose check goes straight to node:crypto, keyed by the
 * DER of their OID, with the digest to use (null: EdDSA hashes internally).
 * Why: through @peculiar/x509's verify() (a WebCrypto key import) a P-256
 * CSR cost 0.96 ms of CPU to parse and verify; this way, with the
 * subjectAltName read below, 0.68 ms (`npm run bench`, breakdown).
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
  let subjectAltName: Buffer | undefined;
  try {
    const asn = AsnConvert.parse(bytes(der), CertificationRequest);
    request = new x509.Pkcs10CertificateRequest(asn);
    keyType = keyTypeOf(request.publicKey);
    subjectAltName = requestedSubjectAltName(asn);
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
  // CertificationRequestInfo ::= SEQUENCE { version, subject, subjectPKInfo, [0] attributes },
  // already parsed above, so its fields can be sliced out as they were signed.
  const [info] = children(der);
  const [, subject, subjectPublicKeyInfo] = children(der, info);
  return {
    der,
    request,
    subject: request.subject,
    keyType,
    subjectDer: der.subarray(subject!.offset, subject!.end),
    subjectPublicKeyInfo: der.subarray(subjectPublicKeyInfo!.offset, subjectPublicKeyInfo!.end),
    subjectAltName,
  };
}

/**
 * The subjectAltName from the extensionRequest attribute (RFC 2985 §5.4.2),
 * read with asn1-schema alone: @peculiar/x509's `extensions` builds an object
 * for every extension, which `npm run bench` measured at ~0.25 ms per CSR.
 */
function requestedSubjectAltName(asn: CertificationRequest): Buffer | undefined {
  const attribute = asn.certificationRequestInfo.attributes.find((a) => a.type === ID_EXTENSION_REQUEST);
  const value = attribute?.values[0];
  if (!value) return undefined;
  const extension = AsnConvert.parse(value, Extensions).find((e) => e.extnID === id_ce_subjectAltName);
  return extension && Buffer.from(AsnConvert.serialize(extension));
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
