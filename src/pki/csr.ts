import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { DirectoryString, Extensions, id_ce_subjectAltName } from '@peculiar/asn1-x509';
import { bytes, x509 } from './x509.js';
import { EstError } from '../errors.js';
import { keyTypeOf } from './key-type.js';
import { children } from './der.js';
import { verifySignedDer } from './signature.js';

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
  /** The challengePassword attribute (RFC 2985 §5.4.1), where EST puts the channel binding (RFC 7030 §3.5). */
  readonly challengePassword?: string;
}

const ID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const ID_CHALLENGE_PASSWORD = '1.2.840.113549.1.9.7';

/**
 * Parses a DER PKCS#10 request (RFC 2986) and checks its self-signature, which
 * is the proof that the requester holds the private key (RFC 7030 §3.4).
 * Library errors become `400 malformed PKCS#10 request`. `signatureVerified`
 * skips the signature check for a CSR est-ra stored after checking it.
 *
 * @example
 * const csr = await parseAndVerifyCsr(der);
 * csr.keyType; // 'p_256'
 */
export async function parseAndVerifyCsr(der: Buffer, options: { signatureVerified?: boolean } = {}): Promise<VerifiedCsr> {
  let request: x509.Pkcs10CertificateRequest;
  let keyType: string;
  let subjectAltName: Buffer | undefined;
  let challengePassword: string | undefined;
  try {
    const asn = AsnConvert.parse(bytes(der), CertificationRequest);
    request = new x509.Pkcs10CertificateRequest(asn);
    keyType = keyTypeOf(request.publicKey);
    subjectAltName = requestedSubjectAltName(asn);
    challengePassword = challengePasswordOf(asn);
  } catch (cause) {
    throw EstError.badRequest('EST_CSR_MALFORMED', undefined, cause);
  }
  let signatureValid = options.signatureVerified === true;
  try {
    signatureValid ||= await verifySignature(der, request);
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
    challengePassword,
  };
}

/** challengePassword ::= DirectoryString (RFC 2985 §5.4.1): whichever string type the client chose. */
function challengePasswordOf(asn: CertificationRequest): string | undefined {
  const value = asn.certificationRequestInfo.attributes.find((a) => a.type === ID_CHALLENGE_PASSWORD)?.values[0];
  if (!value) return undefined;
  const text = AsnConvert.parse(value, DirectoryString);
  return text.utf8String ?? text.printableString ?? text.teletexString ?? text.bmpString ?? text.universalString;
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
async function verifySignature(der: Buffer, request: x509.Pkcs10CertificateRequest): Promise<boolean> {
  const checked = await verifySignedDer(der, { key: Buffer.from(request.publicKey.rawData), format: 'der', type: 'spki' });
  return checked ?? request.verify();
}
