import { bytes, x509 } from './x509.js';
import { EstError } from '../errors.js';
import type { KeyObject } from 'node:crypto';
import { describeSpki, keyTypeOfKey } from './key-type.js';
import { checkDer, children, DerError, whatIsWrong, dottedOid, expectTags, extensionByOid, readWhole, sliceTlv, TAG, type TlvHeader } from './der.js';
import { checkAlgorithmIdentifier, checkExtensions, checkName, checkSignatureBits, checkSubjectPublicKeyInfo } from './x509-fields.js';
import { ID_CE_SUBJECT_ALT_NAME } from './identity.js';
import { importSpki, verifySignedDer } from './signature.js';
import { readPqcSpki, verifyPqcSignedDer, type PqcPublicKey } from './pqc.js';

/** A PKCS#10 request that parsed and whose signature verified. */
export interface VerifiedCsr {
  readonly der: Buffer;
  /** RFC 4514 string of the requested subject. */
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
  /** An RSA key's public exponent, as OpenSSL loaded it. */
  readonly rsaPublicExponent?: bigint;
  /** /serverkeygen: the key to encrypt the new private key to (RFC 7030 §4.4.1.1–2), when the CSR names one. */
  readonly decryptKeyIdentifier?: DecryptKeyIdentifier;
}

/** DecryptKeyIdentifier (a symmetric key shared beforehand) or AsymmetricDecryptKeyIdentifier (a subjectKeyIdentifier). */
export interface DecryptKeyIdentifier {
  readonly kind: 'symmetric' | 'asymmetric';
  readonly identifier: Buffer;
}

const ID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const ID_CHALLENGE_PASSWORD = '1.2.840.113549.1.9.7';
/** id-aa-decryptKeyID and id-aa-asymmDecryptKeyID (RFC 7030 §4.4.1.1, §4.4.1.2): each one OCTET STRING. */
const DECRYPT_KEY_ID_KINDS: ReadonlyMap<string, DecryptKeyIdentifier['kind']> = new Map([
  ['1.2.840.113549.1.9.16.2.37', 'symmetric'],
  ['1.2.840.113549.1.9.16.2.54', 'asymmetric'],
]);

/**
 * Parses a DER PKCS#10 request (RFC 2986) and checks its self-signature, which
 * is the proof that the requester holds the private key (RFC 7030 §3.4).
 * Malformed input becomes `400 malformed PKCS#10 request`. `signatureVerified`
 * skips the signature check for a CSR est-ra stored after checking it.
 *
 * The request is read by walking its DER strictly (pki/der.ts), the key
 * imported and the signature checked by node:crypto (OpenSSL): a CPU
 * profile of est-ra at c32 put @peculiar/x509's parse (asn1js trees) at
 * ~0.45 ms of the main thread per enrollment, against ~0.05 ms for this.
 * Only signature algorithms node:crypto is not given (RSA-PSS) go through the library.
 * ML-DSA and SLH-DSA keys, which OpenSSL 3.0 cannot load, are verified with
 * @noble/post-quantum (verifiedPqcCsr).
 *
 * @example
 * const csr = await parseAndVerifyCsr(der);
 * csr.keyType; // 'p_256'
 */
export async function parseAndVerifyCsr(der: Buffer, options: { signatureVerified?: boolean } = {}): Promise<VerifiedCsr> {
  let fields: CsrFields;
  let subject: string;
  let pqc: PqcPublicKey | undefined;
  try {
    fields = readCsr(der);
    subject = new x509.Name(bytes(fields.subjectDer)).toString();
    pqc = readPqcSpki(fields.subjectPublicKeyInfo);
  } catch (cause) {
    throw EstError.badRequest('EST_CSR_MALFORMED', `malformed PKCS#10 request: ${whatIsWrong(cause)}`, cause);
  }
  if (pqc) return await verifiedPqcCsr(der, fields, subject, pqc, options);
  // The key as OpenSSL reads it (node:crypto): its type and size come from
  // there, not from a second reading of the key's DER.
  let key: KeyObject;
  try {
    key = importSpki(fields.subjectPublicKeyInfo);
  } catch (cause) {
    // A key the crypto library cannot load (unknown curve, point not on the
    // curve) is still the client's request at fault.
    throw EstError.badRequest('EST_CSR_SIGNATURE', `CSR signature cannot be verified for key type ${describeSpki(fields.subjectPublicKeyInfo)}`, cause);
  }
  const keyType = keyTypeOfKey(key);
  if (options.signatureVerified !== true) {
    let signatureValid: boolean;
    try {
      signatureValid = (await verifySignedDer(der, key)) ?? (await new x509.Pkcs10CertificateRequest(bytes(der)).verify());
    } catch (cause) {
      throw EstError.badRequest('EST_CSR_SIGNATURE', `CSR signature cannot be verified for key type ${keyType}`, cause);
    }
    if (!signatureValid) throw EstError.badRequest('EST_CSR_SIGNATURE');
  }
  return {
    der,
    subject,
    keyType,
    subjectDer: fields.subjectDer,
    subjectPublicKeyInfo: fields.subjectPublicKeyInfo,
    subjectAltName: fields.subjectAltName,
    challengePassword: fields.challengePassword,
    rsaPublicExponent: key.asymmetricKeyDetails?.publicExponent,
    decryptKeyIdentifier: fields.decryptKeyIdentifier,
  };
}

/**
 * A CSR with an ML-DSA or SLH-DSA key, which OpenSSL 3.0 cannot load: the
 * key is read from its SubjectPublicKeyInfo (pki/pqc.ts: OID, no
 * parameters, exact size) and the proof of possession checked by
 * @noble/post-quantum on a worker thread, signed with the key's own
 * algorithm identifier.
 */
async function verifiedPqcCsr(
  der: Buffer,
  fields: CsrFields,
  subject: string,
  key: PqcPublicKey,
  options: { signatureVerified?: boolean },
): Promise<VerifiedCsr> {
  if (options.signatureVerified !== true) {
    const verdict = await verifyPqcSignedDer(der, key);
    if (verdict === 'algorithm-mismatch') {
      throw EstError.badRequest('EST_CSR_SIGNATURE', `CSR signature algorithm is not ${key.keyType} (${key.oid}, no parameters), the algorithm of its key`);
    }
    if (verdict !== 'valid')
      throw EstError.badRequest('EST_CSR_SIGNATURE', `CSR signature does not verify with its ${key.keyType} key (no proof of possession)`);
  }
  return { der, subject, keyType: key.keyType, ...fields };
}

interface CsrFields {
  readonly subjectDer: Buffer;
  readonly subjectPublicKeyInfo: Buffer;
  readonly subjectAltName?: Buffer;
  readonly challengePassword?: string;
  readonly decryptKeyIdentifier?: DecryptKeyIdentifier;
}

/**
 * CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature BIT STRING }
 * CertificationRequestInfo ::= SEQUENCE { version INTEGER, subject Name, subjectPKInfo, attributes [0] }
 * Attribute ::= SEQUENCE { type OBJECT IDENTIFIER, values SET OF ANY }
 * (RFC 2986 §4). Strict DER throughout (pki/der.ts checkDer), exactly these
 * fields; `attributes` may be absent as OpenSSL and Bouncy Castle allow.
 * Throws DerError on anything else.
 */
function readCsr(der: Buffer): CsrFields {
  const root = readWhole(der);
  if (root.tag !== TAG.sequence) throw new DerError('a CertificationRequest is a SEQUENCE');
  checkDer(der, root);
  const [info, algorithm, signature] = expectTags(der, root, [TAG.sequence, TAG.sequence, TAG.bitString]);
  checkAlgorithmIdentifier(der, algorithm!);
  checkSignatureBits(der, signature!);
  const [, subject, spki, attributes] = expectTags(der, info!, [TAG.integer, TAG.sequence, TAG.sequence, 0xa0], 1);
  checkName(der, subject!);
  checkSubjectPublicKeyInfo(der, spki!);
  let subjectAltName: Buffer | undefined;
  let challengePassword: string | undefined;
  let decryptKeyIdentifier: DecryptKeyIdentifier | undefined;
  for (const attribute of attributes ? children(der, attributes) : []) {
    if (attribute.tag !== TAG.sequence) throw new DerError('an Attribute is a SEQUENCE');
    const [type, values] = expectTags(der, attribute, [TAG.oid, TAG.set]);
    const oid = dottedOid(der, type!);
    const all = children(der, values);
    // challengePassword is SINGLE VALUE (RFC 2985 §5.4.1), as Bouncy Castle insists; OpenSSL reads the first extensionRequest value.
    if (oid === ID_CHALLENGE_PASSWORD && all.length !== 1) throw new DerError('challengePassword must have one value');
    const [value] = all;
    if (!value) continue;
    const keyIdKind = DECRYPT_KEY_ID_KINDS.get(oid);
    if (oid === ID_EXTENSION_REQUEST) subjectAltName = extensionByOid(der, checkExtensions(der, value), ID_CE_SUBJECT_ALT_NAME);
    else if (oid === ID_CHALLENGE_PASSWORD) challengePassword = directoryString(der, value);
    else if (keyIdKind) {
      if (all.length !== 1 || value.tag !== TAG.octetString) throw new DerError('a decrypt key identifier is one OCTET STRING');
      // Both given: the symmetric one wins, and is refused (est-ra holds no shared keys) rather than half-honoured.
      if (decryptKeyIdentifier?.kind !== 'symmetric') decryptKeyIdentifier = { kind: keyIdKind, identifier: Buffer.from(der.subarray(value.start, value.end)) };
    }
  }
  return {
    subjectDer: sliceTlv(der, subject!),
    subjectPublicKeyInfo: sliceTlv(der, spki!),
    subjectAltName,
    challengePassword,
    decryptKeyIdentifier,
  };
}

/**
 * DirectoryString (RFC 5280 §4.1.2.4) in whichever of its string types the
 * client chose, as challengePassword allows (RFC 2985 §5.4.1); IA5String is
 * not one of them (Bouncy Castle's DirectoryString refuses it too).
 */
function directoryString(der: Buffer, value: TlvHeader): string {
  const content = der.subarray(value.start, value.end);
  switch (value.tag) {
    case 0x0c: // UTF8String
    case 0x13: // PrintableString
      return content.toString('utf8');
    case 0x14: // TeletexString, read as Latin-1 as most libraries do
      return content.toString('latin1');
    case 0x1e: // BMPString: UTF-16BE
      return Buffer.from(content).swap16().toString('utf16le');
    case 0x1c: // UniversalString: UTF-32BE
      return String.fromCodePoint(...Array.from({ length: content.length / 4 }, (_, i) => content.readUInt32BE(i * 4)));
    default:
      throw new DerError('challengePassword is not a DirectoryString');
  }
}
