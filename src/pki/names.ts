import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import * as asn1X509 from '@peculiar/asn1-x509';
import * as asn1js from 'asn1js';

/**
 * The names a certificate says: subject attributes and subjectAltName
 * entries, read from DER and written back to DER by @peculiar/asn1-x509
 * (a library parse of untrusted bytes; no hand-written decoding here).
 */

/** Subject attributes est-ra's profiles can rule on, by DigiCert's names (certificate profile `subject.*`). */
export const SUBJECT_ATTRIBUTES = {
  common_name: '2.5.4.3',
  organization_name: '2.5.4.10',
  organization_unit: '2.5.4.11',
  street_address: '2.5.4.9',
  postal_code: '2.5.4.17',
  locality: '2.5.4.7',
  state: '2.5.4.8',
  country: '2.5.4.6',
  email: '1.2.840.113549.1.9.1',
  /** Not one of DigiCert's: the serialNumber attribute IDevIDs carry (IEEE 802.1AR). */
  serial_number: '2.5.4.5',
} as const;
export type SubjectAttribute = keyof typeof SUBJECT_ATTRIBUTES;
export const SUBJECT_ATTRIBUTE_NAMES = Object.keys(SUBJECT_ATTRIBUTES) as SubjectAttribute[];

/** subjectAltName entry types est-ra's profiles can rule on (DigiCert's `san.*`, plus uri and ip_address). */
export const SAN_TYPES = ['dns_name', 'ip_address', 'email', 'user_principal_name', 'uri'] as const;
export type SanType = (typeof SAN_TYPES)[number];

/** Microsoft's userPrincipalName otherName (MS-WCCE), the UPN SAN of DigiCert's profiles. */
const ID_MS_UPN = '1.3.6.1.4.1.311.20.2.3';
const ATTRIBUTE_BY_OID = new Map<string, SubjectAttribute>(Object.entries(SUBJECT_ATTRIBUTES).map(([name, oid]) => [oid, name as SubjectAttribute]));

export interface NameValue<K extends string> {
  readonly kind: K;
  readonly value: string;
}

/** Names as a request or a certificate gives them; `other` entries are what no profile can allow (named for the refusal). */
export interface Names {
  readonly subject: readonly NameValue<SubjectAttribute | `other:${string}`>[];
  readonly san: readonly NameValue<SanType | `other:${string}`>[];
}

/** The names a certificate for a request will carry, as the profile's name policy decided them. */
export interface IssuedNames {
  readonly subject: readonly NameValue<SubjectAttribute>[];
  readonly san: readonly NameValue<SanType>[];
  /** Exactly the names the CSR asked for: the CA may copy the CSR's own encoding of them. */
  readonly asRequested: boolean;
}

/**
 * Reads a DER Name and, when present, a DER subjectAltName Extension.
 * Throws on malformed input (the caller maps it to 400 or 502).
 */
export function readNames(subjectDer: Uint8Array, subjectAltName: Uint8Array | undefined): Names {
  const name = AsnConvert.parse(subjectDer, asn1X509.Name);
  const subject = name.flatMap((rdn) =>
    rdn.map((atv) => {
      const attribute = ATTRIBUTE_BY_OID.get(atv.type);
      return { kind: attribute ?? (`other:${atv.type}` as const), value: atv.value.toString() };
    }),
  );
  const san: NameValue<SanType | `other:${string}`>[] = [];
  if (subjectAltName) {
    const extension = AsnConvert.parse(subjectAltName, asn1X509.Extension);
    for (const entry of AsnConvert.parse(extension.extnValue.buffer, asn1X509.SubjectAlternativeName)) san.push(readGeneralName(entry));
  }
  return { subject, san };
}

function readGeneralName(name: asn1X509.GeneralName): NameValue<SanType | `other:${string}`> {
  if (name.dNSName !== undefined) return { kind: 'dns_name', value: name.dNSName };
  if (name.iPAddress !== undefined) return { kind: 'ip_address', value: name.iPAddress };
  if (name.rfc822Name !== undefined) return { kind: 'email', value: name.rfc822Name };
  if (name.uniformResourceIdentifier !== undefined) return { kind: 'uri', value: name.uniformResourceIdentifier };
  if (name.otherName?.typeId === ID_MS_UPN) {
    const inner = asn1js.fromBER(name.otherName.value);
    if (inner.offset !== -1 && inner.result instanceof asn1js.Utf8String) return { kind: 'user_principal_name', value: inner.result.valueBlock.value };
    throw new Error('malformed userPrincipalName');
  }
  if (name.otherName) return { kind: `other:otherName ${name.otherName.typeId}`, value: '' };
  if (name.directoryName) return { kind: 'other:directoryName', value: '' };
  if (name.registeredID !== undefined) return { kind: 'other:registeredID', value: name.registeredID };
  return { kind: 'other:x400Address or ediPartyName', value: '' };
}

/** DigiCert's `encoding: auto`: PrintableString when the value fits it (RFC 5280 §4.1.2.6), else UTF8String. */
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** The conventional X.500 order, broadest first: C, ST, L, street, postalCode, O, OU, CN, serialNumber, emailAddress. */
export const ENCODING_ORDER: readonly SubjectAttribute[] = [
  'country',
  'state',
  'locality',
  'street_address',
  'postal_code',
  'organization_name',
  'organization_unit',
  'common_name',
  'serial_number',
  'email',
];

/** Writes a subject Name, one attribute per RDN, in the conventional order. */
export function encodeSubject(attributes: readonly NameValue<SubjectAttribute>[]): Buffer {
  const ordered = [...attributes].sort((a, b) => ENCODING_ORDER.indexOf(a.kind) - ENCODING_ORDER.indexOf(b.kind));
  const name = new asn1X509.Name(
    ordered.map(({ kind, value }) => {
      const stringValue =
        kind === 'email'
          ? { ia5String: value }
          : kind === 'country' || kind === 'serial_number' || PRINTABLE.test(value)
            ? { printableString: value }
            : { utf8String: value };
      return new asn1X509.RelativeDistinguishedName([
        new asn1X509.AttributeTypeAndValue({ type: SUBJECT_ATTRIBUTES[kind], value: new asn1X509.AttributeValue(stringValue) }),
      ]);
    }),
  );
  return Buffer.from(AsnConvert.serialize(name));
}

/**
 * Writes a whole subjectAltName Extension (RFC 5280 §4.2.1.6); critical when
 * the subject is empty, as the RFC requires.
 */
export function encodeSubjectAltName(entries: readonly NameValue<SanType>[], subjectEmpty: boolean): Buffer {
  const names = new asn1X509.SubjectAlternativeName(
    entries.map(({ kind, value }) => {
      switch (kind) {
        case 'dns_name':
          return new asn1X509.GeneralName({ dNSName: value });
        case 'ip_address':
          return new asn1X509.GeneralName({ iPAddress: value });
        case 'email':
          return new asn1X509.GeneralName({ rfc822Name: value });
        case 'uri':
          return new asn1X509.GeneralName({ uniformResourceIdentifier: value });
        case 'user_principal_name':
          return new asn1X509.GeneralName({
            otherName: new asn1X509.OtherName({ typeId: ID_MS_UPN, value: new asn1js.Utf8String({ value }).toBER(false) }),
          });
      }
    }),
  );
  const extension = new asn1X509.Extension({
    extnID: asn1X509.id_ce_subjectAltName,
    critical: subjectEmpty,
    extnValue: new OctetString(AsnConvert.serialize(names)),
  });
  return Buffer.from(AsnConvert.serialize(extension));
}
