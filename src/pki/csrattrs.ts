import { EstError } from '../errors.js';
import { PQC_KEY_TYPES, type KeyType, type PqcKeyType } from './key-type.js';
import {
  bitString,
  checkDer,
  children,
  contextTag,
  DerError,
  dottedOid,
  whatIsWrong,
  expectTags,
  objectIdentifier,
  readTlv,
  readWhole,
  sequence,
  set,
  sliceTlv,
  smallInteger,
  tlv,
  unsignedInteger,
  TAG,
  type TlvHeader,
} from './der.js';
import { encodeSubject, encodeSubjectAltName, SUBJECT_ATTRIBUTES, type NameValue, type SanType, type SubjectAttribute } from './names.js';

/**
 * What /csrattrs asks a device to put in its CSR (RFC 7030 §4.5, RFC 9908):
 * the key types, the subject attributes and SANs required or fixed, a
 * challengePassword, the signature algorithms. policy/csr-wishes.ts derives
 * it from a profile's own rules.
 */
export interface CsrWishes {
  /** Advertised key types, preferred first (the template form carries only the first). */
  readonly keyTypes: readonly KeyType[];
  /** OIDs of the signature algorithms for the CSR's self-signature. */
  readonly signatureAlgorithms: readonly string[];
  readonly challengePassword: boolean;
  /** Subject attributes the CSR must carry (`value` absent) or whose value the profile fixes. */
  readonly subject: readonly { readonly kind: SubjectAttribute; readonly value?: string }[];
  /** The subjectAltName the profile wants: fixed entries, and types the device must fill in. */
  readonly san?: { readonly fixed: readonly NameValue<SanType>[]; readonly toFill: readonly SanType[] };
  /** The `csrattrs.oids` additions, in dotted form. */
  readonly extraOids: readonly string[];
}

export const OID = {
  challengePassword: '1.2.840.113549.1.9.7',
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectAltName: '2.5.29.17',
  ecPublicKey: '1.2.840.10045.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ed25519: '1.3.101.112',
  ed448: '1.3.101.113',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecdsaWithSha512: '1.2.840.10045.4.3.4',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  sha384WithRsa: '1.2.840.113549.1.1.12',
  sha512WithRsa: '1.2.840.113549.1.1.13',
} as const;

/** How /csrattrs names one key type (RFC 9908 §3.2): the key algorithm, its curve or RSA size, the CSR signature that goes with it. */
export interface KeyTypeWish {
  readonly algorithm: string;
  /** EC: the named curve's OID, the Attribute's value. */
  readonly curve?: string;
  /** RSA: the modulus size, the Attribute's INTEGER value. */
  readonly rsaBits?: number;
  /** The CSR signature algorithm under match_issuer; none for EdDSA, whose key OID names the signature too (RFC 8410 §3). */
  readonly signature?: string;
}

/** One line per key type: a key type added to KEY_TYPES (e.g. a PQC one) must add its line here, or the build fails. */
export const KEY_TYPE_WISHES: Readonly<Record<KeyType, KeyTypeWish>> = {
  rsa_2048: { algorithm: OID.rsaEncryption, rsaBits: 2048, signature: OID.sha256WithRsa },
  rsa_3072: { algorithm: OID.rsaEncryption, rsaBits: 3072, signature: OID.sha256WithRsa },
  rsa_4096: { algorithm: OID.rsaEncryption, rsaBits: 4096, signature: OID.sha256WithRsa },
  p_256: { algorithm: OID.ecPublicKey, curve: '1.2.840.10045.3.1.7', signature: OID.ecdsaWithSha256 },
  p_384: { algorithm: OID.ecPublicKey, curve: '1.3.132.0.34', signature: OID.ecdsaWithSha384 },
  p_521: { algorithm: OID.ecPublicKey, curve: '1.3.132.0.35', signature: OID.ecdsaWithSha512 },
  ed_25519: { algorithm: OID.ed25519 },
  ed_448: { algorithm: OID.ed448 },
  rsa_1024: { algorithm: OID.rsaEncryption, rsaBits: 1024, signature: OID.sha256WithRsa },
  // ML-DSA and SLH-DSA: one OID names both the key and its signature (RFC 9881 §2), as for EdDSA.
  ...(Object.fromEntries(Object.entries(PQC_KEY_TYPES).map(([name, type]) => [name, { algorithm: type.oid }])) as Record<PqcKeyType, KeyTypeWish>),
};

/**
 * RFC 9908 §3.4 and its ASN.1 module (Appendix A). The draft left these
 * as TBD2/TBD3 in the SMI Security for S/MIME Attributes arc
 * (1.2.840.113549.1.9.16.2); .61 and .62 are the values independent
 * RFC 9908 implementations use.
 */
export const TEMPLATE_OID = {
  certificationRequestInfoTemplate: '1.2.840.113549.1.9.16.2.61',
  extensionReqTemplate: '1.2.840.113549.1.9.16.2.62',
} as const;

/**
 * plain: the RFC 7030 §4.5.2 list of AttrOrOID, as RFC 9908 §3.2 clarifies
 * it. template: the same list followed by one
 * id-aa-certificationRequestInfoTemplate attribute (RFC 9908 §4: a server
 * may send both; clients that know the template use it alone, older ones
 * ignore an attribute they do not know).
 */
export type CsrAttrsForm = 'plain' | 'template';

/**
 * Encodes what a profile asks for (policy/csr-wishes.ts) as CsrAttrs
 * (RFC 7030 §4.5.2):
 *
 *   CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
 *   AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute }
 *
 * In order: challengePassword; one Attribute per key type (RFC 9908 §3.2:
 * the key algorithm with the curve OID or the RSA size as its value; EdDSA
 * as a bare OID, it has no parameter); the subject attributes the CSR must
 * carry, as OIDs (as RFC 9908's examples ask for serialNumber); the subjectAltName as an
 * extensionRequest attribute when the profile fixes entries, else its OID;
 * the signature algorithms; the `csrattrs.oids` additions. Undefined when
 * the profile asks for nothing, which /csrattrs answers with 204.
 */
export function encodeCsrAttrs(wishes: CsrWishes, form: CsrAttrsForm = 'plain'): Buffer | undefined {
  const items: Buffer[] = [];
  if (wishes.challengePassword) items.push(objectIdentifier(OID.challengePassword));
  for (const type of wishes.keyTypes) items.push(keyTypeItem(type));
  for (const entry of wishes.subject) if (entry.value === undefined) items.push(objectIdentifier(SUBJECT_ATTRIBUTES[entry.kind]));
  if (wishes.san && wishes.san.fixed.length > 0) {
    items.push(attribute(OID.extensionRequest, sequence(encodeSubjectAltName(wishes.san.fixed, false))));
  } else if (wishes.san) items.push(objectIdentifier(OID.subjectAltName));
  for (const oid of wishes.signatureAlgorithms) items.push(objectIdentifier(oid));
  for (const oid of wishes.extraOids) items.push(objectIdentifier(oid));
  if (form === 'template') items.push(attribute(TEMPLATE_OID.certificationRequestInfoTemplate, encodeTemplate(wishes)));
  const unique = items.filter((item, i) => items.findIndex((other) => other.equals(item)) === i);
  return unique.length > 0 ? sequence(...unique) : undefined;
}

function keyTypeItem(type: keyof typeof KEY_TYPE_WISHES): Buffer {
  const wish = KEY_TYPE_WISHES[type];
  if (wish.curve !== undefined) return attribute(wish.algorithm, objectIdentifier(wish.curve));
  if (wish.rsaBits !== undefined) return attribute(wish.algorithm, integer(wish.rsaBits));
  return objectIdentifier(wish.algorithm);
}

/** A non-negative INTEGER of any size (smallInteger takes one byte). */
function integer(value: number): Buffer {
  const hex = value.toString(16);
  return unsignedInteger(Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex'));
}

/** Attribute ::= SEQUENCE { type OID, values SET SIZE (1..MAX) } with one value. */
function attribute(type: string, value: Buffer): Buffer {
  return sequence(objectIdentifier(type), set(value));
}

/**
 * CertificationRequestInfoTemplate (RFC 9908 §3.4, module with IMPLICIT TAGS):
 *
 *   SEQUENCE {
 *     version       INTEGER { v1(0) },
 *     subject       NameTemplate OPTIONAL,           -- RDNs, a value only where fixed
 *     subjectPKInfo [0] SubjectPublicKeyInfoTemplate OPTIONAL,
 *     attributes    [1] Attributes }
 *
 * The subject is present only when the profile requires or fixes an
 * attribute; subjectPKInfo carries the preferred key type (a template has
 * room for one), with a placeholder key of the RSA size for RSA; the
 * attributes carry the subjectAltName: id-ExtensionReq when every entry is
 * fixed, id-aa-extensionReqTemplate with empty entries for the device to
 * fill in otherwise (§3.4: never both).
 */
function encodeTemplate(wishes: CsrWishes): Buffer {
  const fields: Buffer[] = [smallInteger(0)];
  if (wishes.subject.length > 0) fields.push(sequence(...wishes.subject.map((entry) => set(attributeTemplate(entry.kind, entry.value)))));
  const preferred = wishes.keyTypes[0];
  if (preferred !== undefined) fields.push(subjectPublicKeyInfoTemplate(preferred));
  const attributes: Buffer[] = [];
  if (wishes.san) {
    const names = sanEntries(wishes.san.fixed, wishes.san.toFill);
    const extension = sequence(objectIdentifier(OID.subjectAltName), tlv(TAG.octetString, sequence(...names)));
    attributes.push(attribute(wishes.san.toFill.length > 0 ? TEMPLATE_OID.extensionReqTemplate : OID.extensionRequest, sequence(extension)));
  }
  fields.push(contextTag(1, ...attributes));
  return sequence(...fields);
}

/** SingleAttributeTemplate ::= SEQUENCE { type, value OPTIONAL }: the value encoded as the certificate would carry it. */
function attributeTemplate(kind: SubjectAttribute, value: string | undefined): Buffer {
  if (value === undefined) return sequence(objectIdentifier(SUBJECT_ATTRIBUTES[kind]));
  const name = encodeSubject([{ kind, value }]);
  const rdn = children(name, readTlv(name, 0))[0]!;
  return sliceTlv(name, children(name, rdn)[0]!);
}

/** [0] IMPLICIT SubjectPublicKeyInfoTemplate { algorithm, subjectPublicKey BIT STRING OPTIONAL }. */
function subjectPublicKeyInfoTemplate(type: keyof typeof KEY_TYPE_WISHES): Buffer {
  const wish = KEY_TYPE_WISHES[type];
  if (wish.curve !== undefined) return contextTag(0, sequence(objectIdentifier(wish.algorithm), objectIdentifier(wish.curve)));
  if (wish.rsaBits !== undefined) {
    // RFC 9908 §3.4: the size is said by a placeholder RSAPublicKey whose modulus has that many bits.
    const modulus = Buffer.alloc(wish.rsaBits / 8);
    modulus[0] = 0x80;
    const placeholder = sequence(unsignedInteger(modulus), unsignedInteger(Buffer.from([0x01, 0x00, 0x01])));
    return contextTag(0, sequence(objectIdentifier(wish.algorithm), tlv(TAG.null)), bitString(placeholder));
  }
  return contextTag(0, sequence(objectIdentifier(wish.algorithm)));
}

/** Empty GeneralName of each type for the device to fill in (RFC 9908 §3.4: e.g. iPAddress with an empty OCTET STRING). */
const EMPTY_GENERAL_NAME: Readonly<Record<SanType, Buffer>> = {
  email: tlv(0x81),
  dns_name: tlv(0x82),
  uri: tlv(0x86),
  ip_address: tlv(0x87),
  // otherName [0] { type-id userPrincipalName, [0] EXPLICIT UTF8String "" }
  user_principal_name: contextTag(0, objectIdentifier('1.3.6.1.4.1.311.20.2.3'), contextTag(0, tlv(TAG.utf8String))),
};

/** The GeneralName entries: the fixed ones as the certificate will carry them, then an empty one per type to fill in. */
function sanEntries(fixed: Parameters<typeof encodeSubjectAltName>[0], toFill: readonly SanType[]): Buffer[] {
  const entries: Buffer[] = [];
  if (fixed.length > 0) {
    const extension = encodeSubjectAltName(fixed, false);
    const [, value] = children(extension, readTlv(extension, 0)).filter((field) => field.tag !== TAG.boolean);
    const names = extension.subarray(value!.start, value!.end);
    for (const name of children(names, readTlv(names, 0))) entries.push(sliceTlv(names, name));
  }
  return [...entries, ...toFill.map((type) => EMPTY_GENERAL_NAME[type])];
}

/**
 * Both sources' attributes in one CsrAttrs (profile's first), each
 * AttrOrOID once. Undefined when neither asks for anything. An upstream's
 * CsrAttrs that is not DER of that shape is refused as the upstream's fault
 * (502 EST_UPSTREAM_INVALID), never read half-way.
 */
export function mergeCsrAttrs(...sources: readonly (Buffer | undefined)[]): Buffer | undefined {
  const seen = new Set<string>();
  const items: Buffer[] = [];
  for (const source of sources) {
    if (!source || source.length === 0) continue;
    for (const item of csrAttrsItems(source)) {
      const der = source.subarray(item.offset, item.end);
      const key = der.toString('hex');
      if (!seen.has(key)) {
        seen.add(key);
        items.push(der);
      }
    }
  }
  return items.length > 0 ? sequence(...items) : undefined;
}

/** CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID; AttrOrOID ::= CHOICE { oid, Attribute { type, values SET } } (RFC 7030 §4.5.2). */
function csrAttrsItems(source: Buffer): TlvHeader[] {
  try {
    const root = readWhole(source);
    checkDer(source, root);
    if (root.tag !== TAG.sequence) throw new DerError('CsrAttrs is not a SEQUENCE');
    const items = children(source, root);
    for (const item of items) {
      if (item.tag === TAG.oid) dottedOid(source, item);
      else if (item.tag !== TAG.sequence) throw new DerError('an AttrOrOID is neither an OID nor an Attribute');
      else dottedOid(source, expectTags(source, item, [TAG.oid, TAG.set])[0]!);
    }
    return items;
  } catch (cause) {
    throw new EstError('EST_UPSTREAM_INVALID', { reason: `upstream /csrattrs answer is not a CsrAttrs: ${whatIsWrong(cause)}`, cause });
  }
}
