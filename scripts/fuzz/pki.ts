/**
 * Certificates and CSRs for the fuzzer, built as DER field by field and
 * signed with node:crypto, so a case can change one field of the signed part
 * and sign again (the signature stays right, only the field is hostile).
 * P-256 keys only: signing is ~50 us, and a pool of hundreds is made in a
 * blink.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import {
  bitString,
  children,
  contextTag,
  objectIdentifier,
  octetString,
  readTlv,
  sequence,
  set,
  sliceTlv,
  smallInteger,
  time,
  tlv,
  unsignedInteger,
} from '../../src/pki/der.js';

const ECDSA_WITH_SHA256 = sequence(objectIdentifier('1.2.840.10045.4.3.2'));
const CRITICAL = tlv(0x01, Buffer.from([0xff]));

export interface KeyPair {
  readonly privateKey: KeyObject;
  /** DER SubjectPublicKeyInfo. */
  readonly spki: Buffer;
}

export function newKey(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, spki: publicKey.export({ type: 'spki', format: 'der' }) };
}

/** A Name of one CN (UTF8String), or of the given attribute TLVs, one per RDN. */
export function name(commonName: string): Buffer {
  return sequence(set(sequence(objectIdentifier('2.5.4.3'), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
}

export function extension(oid: string, value: Buffer, critical = false): Buffer {
  return sequence(objectIdentifier(oid), ...(critical ? [CRITICAL] : []), octetString(value));
}

export const EXTENSIONS = {
  endEntity: (): Buffer => extension('2.5.29.19', sequence(), true),
  ca: (pathLength?: number): Buffer =>
    extension('2.5.29.19', sequence(tlv(0x01, Buffer.from([0xff])), ...(pathLength === undefined ? [] : [smallInteger(pathLength)])), true),
  /** keyUsage with the bits of the first octet (0x80 digitalSignature, 0x04 keyCertSign, 0x02 cRLSign). */
  keyUsage: (bits: number): Buffer => extension('2.5.29.15', tlv(0x03, Buffer.from([0x01, bits])), true),
  clientAuth: (): Buffer => extension('2.5.29.37', sequence(objectIdentifier('1.3.6.1.5.5.7.3.2'))),
  serverAuth: (): Buffer => extension('2.5.29.37', sequence(objectIdentifier('1.3.6.1.5.5.7.3.1'))),
};

/** The fields of a TBSCertificate (RFC 5280 §4.1), each a whole TLV, so a case can replace any one of them. */
export interface TbsFields {
  /** Absent: a v1 certificate (no [0] version). */
  version?: Buffer;
  serial: Buffer;
  issuer: Buffer;
  notBefore: Buffer;
  notAfter: Buffer;
  subject: Buffer;
  spki: Buffer;
  extensions: Buffer[];
}

export function tbsFields(options: {
  serial?: Buffer;
  issuer: Buffer;
  subject: Buffer;
  spki: Buffer;
  notBefore: Date;
  notAfter: Date;
  extensions: Buffer[];
}): TbsFields {
  return {
    version: contextTag(0, smallInteger(2)),
    serial: options.serial ?? unsignedInteger(Buffer.from([0x40, ...Array.from({ length: 15 }, () => Math.floor(Math.random() * 256))])),
    issuer: options.issuer,
    notBefore: time(options.notBefore),
    notAfter: time(options.notAfter),
    subject: options.subject,
    spki: options.spki,
    extensions: options.extensions,
  };
}

/** A certificate of these fields signed with `key` (ecdsa-with-SHA256). */
export function certificate(fields: TbsFields, key: KeyObject): Buffer {
  const tbs = sequence(
    ...(fields.version ? [fields.version] : []),
    fields.serial,
    ECDSA_WITH_SHA256,
    fields.issuer,
    sequence(fields.notBefore, fields.notAfter),
    fields.subject,
    fields.spki,
    ...(fields.extensions.length > 0 ? [contextTag(3, sequence(...fields.extensions))] : []),
  );
  return sequence(tbs, ECDSA_WITH_SHA256, bitString(sign('sha256', tbs, key)));
}

/** A PKCS#10 request (RFC 2986) for `key` with this subject and no attributes. */
export function csr(subject: Buffer, key: KeyPair): Buffer {
  const info = sequence(smallInteger(0), subject, key.spki, contextTag(0));
  return sequence(info, ECDSA_WITH_SHA256, bitString(sign('sha256', info, key.privateKey)));
}

/** The subject Name and SubjectPublicKeyInfo of a DER certificate or CSR (whole TLVs). */
export function subjectAndKey(der: Buffer, kind: 'certificate' | 'csr'): { subject: Buffer; spki: Buffer } {
  const fields = children(der, children(der, readTlv(der, 0))[0]);
  const at = kind === 'csr' ? 1 : fields[0]!.tag === 0xa0 ? 5 : 4;
  return { subject: sliceTlv(der, fields[at]!), spki: sliceTlv(der, fields[at + 1]!) };
}

export function toPem(der: Buffer, label = 'CERTIFICATE'): string {
  return `-----BEGIN ${label}-----\n${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END ${label}-----\n`;
}

/** A self-signed CA, or one issued by `issuer`. */
export function caCertificate(commonName: string, key: KeyPair, issuer?: { subject: Buffer; key: KeyObject }, pathLength?: number): Buffer {
  const subject = name(commonName);
  const now = Date.now();
  return certificate(
    tbsFields({
      issuer: issuer?.subject ?? subject,
      subject,
      spki: key.spki,
      notBefore: new Date(now - 3_600_000),
      notAfter: new Date(now + 10 * 365 * 86_400_000),
      extensions: [EXTENSIONS.ca(pathLength), EXTENSIONS.keyUsage(0x86)],
    }),
    issuer?.key ?? key.privateKey,
  );
}
