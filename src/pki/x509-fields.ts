import {
  checkBitString,
  checkDer,
  checkInteger,
  checkOid,
  children,
  DerError,
  dottedOid,
  expectTags,
  readBoolean,
  readTlv,
  TAG,
  type TlvHeader,
} from './der.js';

/*
 * The fields certificates (RFC 5280 §4.1) and requests (RFC 2986 §4) share,
 * read strictly: exactly the fields the ASN.1 module defines, and the value
 * types OpenSSL's X509_NAME reader accepts, so est-ra and OpenSSL agree on
 * what a well-formed name, key or extension list is
 * (test/unit/differential.spec.ts holds them to it).
 */

/**
 * Attribute value tags of a Name that OpenSSL reads (ASN1_PRINTABLE:
 * strings, BIT STRING, SEQUENCE and types it does not know) and Bouncy
 * Castle knows; VideotexString, INTEGER, BOOLEAN and the like OpenSSL refuses.
 */
const NAME_VALUE_TAGS = new Set<number>([
  TAG.bitString,
  TAG.objectDescriptor,
  TAG.utf8String,
  TAG.relativeOid,
  TAG.numericString,
  TAG.printableString,
  TAG.teletexString,
  TAG.ia5String,
  TAG.universalString,
  TAG.bmpString,
  TAG.sequence,
]);

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Name ::= SEQUENCE OF RelativeDistinguishedName; RDN ::= SET OF
 * AttributeTypeAndValue ::= SEQUENCE { type OID, value } (RFC 5280 §4.1.2.4).
 * OpenSSL converts UTF8String, BMPString and UniversalString values to
 * UTF-8 when it reads a name and refuses the certificate or request when
 * that fails; so does this.
 */
export function checkName(der: Uint8Array, name: TlvHeader): void {
  if (name.tag !== TAG.sequence) throw new DerError('Name is not a SEQUENCE');
  for (const rdn of children(der, name)) {
    if (rdn.tag !== TAG.set) throw new DerError('RelativeDistinguishedName is not a SET');
    checkRelativeDistinguishedName(der, rdn);
  }
}

/** The AttributeTypeAndValues of one RelativeDistinguishedName (a SET, or its IMPLICIT tag). */
function checkRelativeDistinguishedName(der: Uint8Array, rdn: TlvHeader): void {
  for (const attribute of children(der, rdn)) {
    const fields = attribute.tag === TAG.sequence ? children(der, attribute) : [];
    const [type, value] = fields;
    if (fields.length !== 2 || !type || !value) throw new DerError('AttributeTypeAndValue is not { type, value }');
    dottedOid(der, type);
    if (!NAME_VALUE_TAGS.has(value.tag)) throw new DerError(`Name value of tag ${value.tag}`);
    checkNameString(der, value);
  }
}

function checkNameString(der: Uint8Array, value: TlvHeader): void {
  const content = der.subarray(value.start, value.end);
  if (value.tag === TAG.utf8String) {
    try {
      utf8.decode(content);
    } catch {
      throw new DerError('UTF8String that is not UTF-8');
    }
  } else if (value.tag === TAG.bmpString) {
    for (let i = 0; i + 1 < content.length; i += 2) {
      const unit = (content[i]! << 8) | content[i + 1]!;
      if (unit >= 0xd800 && unit <= 0xdfff) throw new DerError('BMPString with a surrogate');
    }
  } else if (value.tag === TAG.universalString) {
    if (content.length % 4 !== 0) throw new DerError('UniversalString of part of a character');
    for (let i = 0; i < content.length; i += 4) {
      const code = ((content[i]! << 24) | (content[i + 1]! << 16) | (content[i + 2]! << 8) | content[i + 3]!) >>> 0;
      if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) throw new DerError('UniversalString with a character outside Unicode');
    }
  }
}

/** AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL } (RFC 5280 §4.1.1.2); its OID. */
export function checkAlgorithmIdentifier(der: Uint8Array, algorithm: TlvHeader): string {
  if (algorithm.tag !== TAG.sequence) throw new DerError('AlgorithmIdentifier is not a SEQUENCE');
  const fields = children(der, algorithm);
  if (fields.length < 1 || fields.length > 2) throw new DerError('AlgorithmIdentifier is not { algorithm, parameters }');
  return dottedOid(der, fields[0]!);
}

/** SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING } (RFC 5280 §4.1.2.7). */
export function checkSubjectPublicKeyInfo(der: Uint8Array, spki: TlvHeader): void {
  if (spki.tag !== TAG.sequence) throw new DerError('SubjectPublicKeyInfo is not a SEQUENCE');
  const [algorithm] = expectTags(der, spki, [TAG.sequence, TAG.bitString]);
  checkAlgorithmIdentifier(der, algorithm!);
}

/** The signature BIT STRING of a signed structure: whole octets (OpenSSL refuses unused bits there). */
export function checkSignatureBits(der: Uint8Array, signature: TlvHeader): void {
  if (signature.tag !== TAG.bitString || signature.end === signature.start || der[signature.start] !== 0) {
    throw new DerError('signature is not a BIT STRING of whole octets');
  }
}

/**
 * Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension; Extension ::=
 * SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET
 * STRING } (RFC 5280 §4.1.2.9, §4.2: an extension appears at most once).
 * Returns the Extension TLVs.
 */
export function checkExtensions(der: Uint8Array, extensions: TlvHeader): TlvHeader[] {
  return [...extensionsByOid(der, extensions).values()];
}

/** checkExtensions, keyed by extnID in dotted form (in order). */
export function extensionsByOid(der: Uint8Array, extensions: TlvHeader): Map<string, TlvHeader> {
  if (extensions.tag !== TAG.sequence) throw new DerError('Extensions is not a SEQUENCE');
  const list = children(der, extensions);
  if (list.length === 0) throw new DerError('empty Extensions');
  const seen = new Map<string, TlvHeader>();
  for (const extension of list) {
    if (extension.tag !== TAG.sequence) throw new DerError('Extension is not a SEQUENCE');
    const fields = children(der, extension);
    const [id, critical, value] = fields.length === 3 ? fields : [fields[0], undefined, fields[1]];
    if (fields.length < 2 || fields.length > 3 || !id || !value || value.tag !== TAG.octetString)
      throw new DerError('Extension is not { extnID, critical, extnValue }');
    if (critical) readBoolean(der, critical);
    const oid = dottedOid(der, id);
    if (seen.has(oid)) throw new DerError(`extension ${oid} appears twice`);
    seen.set(oid, extension);
  }
  return seen;
}

/** The DER value inside an Extension's extnValue, checked as DER and read as one whole TLV. */
export function extensionValue(der: Uint8Array, extension: TlvHeader): { readonly der: Uint8Array; readonly value: TlvHeader } {
  const extnValue = children(der, extension).at(-1)!;
  const inner = der.subarray(extnValue.start, extnValue.end);
  const value = readTlv(inner, 0);
  if (value.end !== inner.length) throw new DerError('bytes after an extension value');
  checkDer(inner, value);
  return { der: inner, value };
}

/**
 * GeneralNames ::= SEQUENCE OF GeneralName (RFC 5280 §4.2.1.6), each of
 * the CHOICE's forms as OpenSSL's GENERAL_NAME reader takes them: IA5
 * strings and iPAddress as primitives, registeredID a valid OID,
 * directoryName a Name, otherName { type-id, [0] EXPLICIT value }.
 */
export function checkGeneralNames(der: Uint8Array, names: TlvHeader, tag: number = TAG.sequence): void {
  if (names.tag !== tag) throw new DerError('GeneralNames is not a SEQUENCE');
  for (const name of children(der, names)) checkGeneralName(der, name);
}

/** DirectoryString (RFC 5280 §4.1.2.4): the string types OpenSSL's DIRECTORYSTRING takes. */
function checkDirectoryString(der: Uint8Array, wrapper: TlvHeader): void {
  const inner = children(der, wrapper);
  if (inner.length !== 1 || ![TAG.printableString, TAG.teletexString, TAG.bmpString, TAG.universalString, TAG.utf8String].includes(inner[0]!.tag as never)) {
    throw new DerError('DirectoryString expected');
  }
}

/** One GeneralName (RFC 5280 §4.2.1.6). */
function checkGeneralName(der: Uint8Array, name: TlvHeader): void {
  switch (name.tag) {
    case 0x81: // rfc822Name
    case 0x82: // dNSName
    case 0x86: // uniformResourceIdentifier
    case 0x87: // iPAddress
      break;
    case 0x88: // registeredID
      checkOid(der, name);
      break;
    case 0xa0: {
      // otherName
      const [type, value] = expectTags(der, name, [TAG.oid, 0xa0]);
      dottedOid(der, type!);
      if (children(der, value).length !== 1) throw new DerError('otherName value is not one value');
      break;
    }
    case 0xa3: // x400Address (ORAddress, a SEQUENCE)
      break;
    case 0xa5: {
      // ediPartyName ::= SEQUENCE { nameAssigner [0] DirectoryString OPTIONAL, partyName [1] DirectoryString }
      const parts = children(der, name);
      const [assigner, party] = parts.length === 2 ? parts : [undefined, parts[0]];
      if (parts.length < 1 || parts.length > 2 || (assigner && assigner.tag !== 0xa0) || party?.tag !== 0xa1) throw new DerError('malformed ediPartyName');
      if (assigner) checkDirectoryString(der, assigner);
      checkDirectoryString(der, party);
      break;
    }
    case 0xa4: {
      // directoryName: [4] EXPLICIT Name
      const inner = children(der, name);
      if (inner.length !== 1) throw new DerError('directoryName is not one Name');
      checkName(der, inner[0]!);
      break;
    }
    default:
      throw new DerError(`GeneralName of tag ${name.tag}`);
  }
}

/** AuthorityKeyIdentifier ::= SEQUENCE { [0] keyIdentifier, [1] authorityCertIssuer GeneralNames, [2] authorityCertSerialNumber } (RFC 5280 §4.2.1.1). */
export function checkAuthorityKeyIdentifier(der: Uint8Array, value: TlvHeader): void {
  if (value.tag !== TAG.sequence) throw new DerError('AuthorityKeyIdentifier is not a SEQUENCE');
  let last = -1;
  for (const field of children(der, value)) {
    const number = field.tag === 0x80 ? 0 : field.tag === 0xa1 ? 1 : field.tag === 0x82 ? 2 : -1;
    if (number <= last) throw new DerError('AuthorityKeyIdentifier with unexpected fields');
    last = number;
    if (number === 1) checkGeneralNames(der, field, 0xa1);
    if (number === 2) checkInteger(der, field);
  }
}

/** Tagged fields [n] of a SEQUENCE in increasing order, each at most once; returns them by tag number. */
function taggedFields(der: Uint8Array, parent: TlvHeader, allowed: Readonly<Record<number, number>>, what: string): Map<number, TlvHeader> {
  if (parent.tag !== TAG.sequence) throw new DerError(`${what} is not a SEQUENCE`);
  const found = new Map<number, TlvHeader>();
  let last = -1;
  for (const field of children(der, parent)) {
    const number = allowed[field.tag];
    if (number === undefined || number <= last) throw new DerError(`${what} with unexpected fields`);
    last = number;
    found.set(number, field);
  }
  return found;
}

/**
 * CRLDistributionPoints ::= SEQUENCE OF DistributionPoint { distributionPoint [0] EXPLICIT
 * DistributionPointName { fullName [0] GeneralNames | nameRelativeToCRLIssuer [1] RDN },
 * reasons [1] BIT STRING, cRLIssuer [2] GeneralNames } (RFC 5280 §4.2.1.13).
 */
export function checkCrlDistributionPoints(der: Uint8Array, value: TlvHeader): void {
  if (value.tag !== TAG.sequence) throw new DerError('CRLDistributionPoints is not a SEQUENCE');
  for (const point of children(der, value)) {
    const fields = taggedFields(der, point, { 0xa0: 0, 0x81: 1, 0xa2: 2 }, 'DistributionPoint');
    const name = fields.get(0);
    if (name) {
      const choice = children(der, name);
      if (choice.length !== 1) throw new DerError('DistributionPointName is not one name');
      if (choice[0]!.tag === 0xa0) checkGeneralNames(der, choice[0]!, 0xa0);
      else if (choice[0]!.tag === 0xa1) checkRelativeDistinguishedName(der, choice[0]!);
      else throw new DerError('malformed DistributionPointName');
    }
    const reasons = fields.get(1);
    if (reasons) checkBitString(der, reasons);
    const issuer = fields.get(2);
    if (issuer) checkGeneralNames(der, issuer, 0xa2);
  }
}

/**
 * NameConstraints ::= SEQUENCE { permittedSubtrees [0] GeneralSubtrees, excludedSubtrees [1] }
 * GeneralSubtree ::= SEQUENCE { base GeneralName, minimum [0] INTEGER DEFAULT 0, maximum [1] INTEGER } (RFC 5280 §4.2.1.10).
 */
export function checkNameConstraints(der: Uint8Array, value: TlvHeader): void {
  for (const subtrees of taggedFields(der, value, { 0xa0: 0, 0xa1: 1 }, 'NameConstraints').values()) {
    for (const subtree of children(der, subtrees)) {
      if (subtree.tag !== TAG.sequence) throw new DerError('GeneralSubtree is not a SEQUENCE');
      const [base, ...bounds] = children(der, subtree);
      if (!base) throw new DerError('GeneralSubtree without a base');
      checkGeneralName(der, base);
      let last = -1;
      for (const bound of bounds) {
        const number = bound.tag === 0x80 ? 0 : bound.tag === 0x81 ? 1 : -1;
        if (number <= last) throw new DerError('GeneralSubtree with unexpected fields');
        last = number;
        checkInteger(der, bound);
      }
    }
  }
}
