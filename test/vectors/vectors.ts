import { sign, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bitString, children, contextTag, readTlv, sequence, sliceTlv, tlv, type TlvHeader } from '../../src/pki/der.js';

/**
 * The fixed malformed vectors of issue #9 §4, made at test time from a real
 * CSR or certificate and a throwaway key (no key is ever committed): each is
 * the original with one defect, signed again where the defect sits in the
 * signed part, so a parser cannot stop at the signature. `reason` is the
 * one-line reason est-ra must give.
 */
export interface Vector {
  readonly name: string;
  readonly der: Buffer;
  readonly reason: string;
}

/** How the signed part is signed again: the key and digest (null for EdDSA). */
export interface Resigner {
  readonly key: KeyObject;
  readonly hash: string | null;
}

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** SEQUENCE { signed, algorithm, BIT STRING signature-of-signed } around new signed bytes. */
function signed(signedPart: Buffer, algorithm: Buffer, resigner: Resigner): Buffer {
  return sequence(signedPart, algorithm, bitString(sign(resigner.hash, signedPart, resigner.key)));
}

/** A TLV with its length in `octets` long-form octets, zero-padded: DER forbids both the padding and the long form below 128. */
function longLength(tag: number, content: Buffer, octets: number): Buffer {
  const length = Buffer.alloc(octets);
  for (let i = octets - 1, rest = content.length; i >= 0; i--, rest = Math.floor(rest / 256)) length[i] = rest & 0xff;
  return Buffer.concat([Buffer.from([tag, 0x80 | octets]), length, content]);
}

function fields(der: Buffer): { root: TlvHeader; parts: TlvHeader[]; inner: TlvHeader[] } {
  const root = readTlv(der, 0);
  const parts = children(der, root);
  return { root, parts, inner: children(der, parts[0]) };
}

/** The CSR vectors, from a DER PKCS#10 request and its key. */
export function csrVectors(csr: Buffer, resigner: Resigner): Vector[] {
  const { parts, inner } = fields(csr);
  const [version, subject, spki, attributes] = inner.map((field) => sliceTlv(csr, field));
  const algorithm = sliceTlv(csr, parts[1]!);
  const info = (...content: Buffer[]): Buffer => sequence(...content);
  const resigned = (...content: Buffer[]): Buffer => signed(info(...content), algorithm, resigner);
  const infoContent = [version!, subject!, spki!, attributes ?? contextTag(0)];
  const body = csr.subarray(readTlv(csr, 0).start);
  // CN's OID 2.5.4.3 (55 04 03) with its "4" written as 80 04: a padded sub-identifier.
  const paddedSubject = sequence(tlv(0x31, sequence(hex('060455800403'), tlv(0x0c, Buffer.from('vector')))));
  return [
    { name: 'SubjectPublicKeyInfo 30 00', der: resigned(version!, subject!, hex('3000'), infoContent[3]!), reason: 'unexpected structure' },
    { name: 'trailing bytes after the request', der: Buffer.concat([csr, hex('00')]), reason: 'bytes after the structure' },
    { name: 'trailing bytes inside the signed part', der: resigned(...infoContent, hex('0500')), reason: 'unexpected structure' },
    { name: 'non-minimal outer length (long form, leading zero)', der: longLength(0x30, body, 3), reason: 'non-minimal length (leading zero octet)' },
    {
      name: 'non-minimal inner length (long form below 128)',
      der: signed(info(longLength(0x02, hex('00'), 1), subject!, spki!, infoContent[3]!), algorithm, resigner),
      reason: 'non-minimal length (long form below 128)',
    },
    { name: 'indefinite length', der: Buffer.concat([hex('3080'), body, hex('0000')]), reason: 'indefinite length (BER)' },
    { name: 'huge length field (4 GiB)', der: Buffer.concat([hex('3084ffffffff'), body]), reason: 'content runs past its container' },
    {
      name: 'length field of nine octets',
      der: Buffer.concat([hex('3089'), Buffer.alloc(8), Buffer.from([body.length]), body]),
      reason: 'length field too long',
    },
    { name: 'padded OBJECT IDENTIFIER (0x80 sub-identifier)', der: resigned(version!, paddedSubject, spki!, infoContent[3]!), reason: 'padded sub-identifier' },
    { name: 'extra field in CertificationRequestInfo', der: resigned(...infoContent, hex('020101')), reason: 'unexpected structure' },
    { name: 'extra field after the signature', der: sequence(...parts.map((part) => sliceTlv(csr, part)), hex('0500')), reason: 'unexpected structure' },
    { name: 'non-minimal INTEGER version', der: resigned(hex('02020000'), subject!, spki!, infoContent[3]!), reason: 'non-minimal INTEGER' },
    {
      name: 'signature BIT STRING with unused bits',
      der: sequence(
        sliceTlv(csr, parts[0]!),
        algorithm,
        Buffer.concat([csr.subarray(parts[2]!.offset, parts[2]!.start), Buffer.from([1]), csr.subarray(parts[2]!.start + 1, parts[2]!.end)]),
      ),
      reason: 'BIT STRING',
    },
  ];
}

/**
 * The certificate vectors, from a DER certificate and its issuer's key. Month
 * 13 is the notAfter "261301000000Z" (OpenSSL parses it, but cannot read it).
 */
export function certificateVectors(certificate: Buffer, resigner: Resigner): Vector[] {
  const { parts, inner } = fields(certificate);
  const algorithm = sliceTlv(certificate, parts[1]!);
  const tbs = inner.map((field) => sliceTlv(certificate, field));
  const validityIndex = inner[0]!.tag === 0xa0 ? 4 : 3;
  const withTbs = (content: Buffer[]): Buffer => signed(sequence(...content), algorithm, resigner);
  const replaced = (index: number, value: Buffer): Buffer[] => tbs.map((field, i) => (i === index ? value : field));
  const validity = (notAfter: string): Buffer =>
    sequence(sliceTlv(certificate, children(certificate, inner[validityIndex])[0]!), tlv(0x17, Buffer.from(notAfter, 'latin1')));
  return [
    { name: 'notAfter in month 13', der: withTbs(replaced(validityIndex, validity('261301000000Z'))), reason: 'time out of range' },
    { name: 'notAfter on February 30', der: withTbs(replaced(validityIndex, validity('260230000000Z'))), reason: 'time out of range' },
    { name: 'trailing bytes after the certificate', der: Buffer.concat([certificate, hex('00')]), reason: 'bytes after the structure' },
    { name: 'extra field in the TBSCertificate', der: withTbs([...tbs, hex('0500')]), reason: 'unexpected field after the subject public key' },
    {
      name: 'non-minimal length of the serial number',
      der: withTbs(replaced(validityIndex - 3, longLength(0x02, certificate.subarray(inner[validityIndex - 3]!.start, inner[validityIndex - 3]!.end), 2))),
      reason: 'non-minimal length (leading zero octet)',
    },
  ];
}

/** Writes vectors as DER files into `dir` (a test's scratch directory); returns their paths by name. */
export function writeVectors(dir: string, vectors: readonly Vector[]): Map<string, string> {
  mkdirSync(dir, { recursive: true });
  return new Map(
    vectors.map((vector, i) => {
      const file = join(dir, `vector-${i}.der`);
      writeFileSync(file, vector.der);
      return [vector.name, file];
    }),
  );
}
