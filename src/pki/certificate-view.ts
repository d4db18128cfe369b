import { X509Certificate } from 'node:crypto';
import { bytes, x509 } from './x509.js';
import {
  checkBitString,
  checkDer,
  children,
  DerError,
  dottedOid,
  expectTags,
  readSmallInteger,
  readTime,
  readWhole,
  sliceTlv,
  TAG,
  type TlvHeader,
} from './der.js';
import {
  checkAlgorithmIdentifier,
  checkAuthorityKeyIdentifier,
  checkCrlDistributionPoints,
  checkNameConstraints,
  extensionsByOid,
  checkGeneralNames,
  checkName,
  checkSignatureBits,
  checkSubjectPublicKeyInfo,
  extensionValue,
} from './x509-fields.js';

const ID_CE_BASIC_CONSTRAINTS = '2.5.29.19';

/**
 * The fields of an X.509 certificate (RFC 5280 §4.1) that est-ra reads on
 * every request, sliced out of its DER: issuer and subject as DER, serial,
 * validity, key, extensions by OID. Client certificates and upstream
 * answers are read this way; `x509` builds the full @peculiar/x509 object
 * only for the rarer paths that need it (revocation fetches, renewal).
 *
 * Why not @peculiar/x509 everywhere: a CPU profile of est-ra at c32 put its
 * parse of the client certificate at ~0.45 ms of the main thread per mTLS
 * enrollment (asn1js trees for every field and extension), against a few
 * microseconds for this walk.
 *
 * @example
 * const view = CertificateView.parse(der);
 * view.serialNumber; // '4f3a…', as openssl and @peculiar/x509 print it
 */
export class CertificateView {
  /** Set by viewOf for a certificate already parsed by @peculiar/x509. */
  full?: x509.X509Certificate;
  private subjectText?: string;
  private ca?: boolean;
  private issuerText?: string;

  private constructor(
    readonly der: Buffer,
    /** DER Name of the issuer. */
    readonly issuerDer: Buffer,
    /** DER Name of the subject. */
    readonly subjectDer: Buffer,
    /** Lowercase hex of the serial number without DER's sign padding, as openssl and @peculiar/x509 print it. */
    readonly serialNumber: string,
    readonly notBefore: Date,
    readonly notAfter: Date,
    /** DER SubjectPublicKeyInfo. */
    readonly subjectPublicKeyInfo: Buffer,
    private readonly extensions: ReadonlyMap<string, TlvHeader>,
  ) {}

  /**
   * Reads a DER certificate strictly: DER throughout (pki/der.ts checkDer),
   * exactly the fields of RFC 5280 §4.1 in order, the same algorithm inside
   * and outside the signed part (§4.1.1.2), valid times as OpenSSL reads
   * them, unique identifiers only from v2 and extensions only in v3, each
   * extension once, and the extensions est-ra reads (basicConstraints,
   * keyUsage, extendedKeyUsage) well-formed. Throws DerError on anything
   * else; the signature is not checked here (see pki/signature.ts).
   */
  static parse(der: Buffer): CertificateView {
    const root = readWhole(der);
    if (root.tag !== TAG.sequence) throw new DerError('a Certificate is a SEQUENCE');
    checkDer(der, root);
    const [tbs, outerAlgorithm, signature] = expectTags(der, root, [TAG.sequence, TAG.sequence, TAG.bitString]);
    checkSignatureBits(der, signature!);
    const fields = children(der, tbs);
    // version [0] EXPLICIT Version DEFAULT v1: absent in v1 certificates.
    const versionField = fields[0]?.tag === 0xa0 ? fields.shift() : undefined;
    const version = versionField ? readSmallInteger(der, expectTags(der, versionField, [TAG.integer])[0]!) : 0;
    if (version < 0 || version > 2) throw new DerError('certificate version is not v1, v2 or v3');
    const [serial, algorithm, issuer, validity, subject, spki, ...rest] = fields;
    if (serial?.tag !== TAG.integer || !algorithm || !issuer || !validity || !subject || !spki) throw new DerError('TBSCertificate misses fields');
    checkAlgorithmIdentifier(der, algorithm);
    checkAlgorithmIdentifier(der, outerAlgorithm!);
    if (!sliceTlv(der, algorithm).equals(sliceTlv(der, outerAlgorithm!))) throw new DerError('signature algorithm differs inside and outside the signed part');
    checkName(der, issuer);
    checkName(der, subject);
    const times = validity.tag === TAG.sequence ? children(der, validity) : [];
    if (times.length !== 2) throw new DerError('Validity is not { notBefore, notAfter }');
    const [notBefore, notAfter] = times.map((time) => readTime(der, time));
    checkSubjectPublicKeyInfo(der, spki);
    // issuerUniqueID [1] IMPLICIT, subjectUniqueID [2] IMPLICIT (v2, v3), extensions [3] EXPLICIT (v3), in this order.
    let extensions: ReadonlyMap<string, TlvHeader> = new Map();
    let last = 0;
    for (const field of rest) {
      const number = field.tag === 0x81 ? 1 : field.tag === 0x82 ? 2 : field.tag === 0xa3 ? 3 : 0;
      if (number <= last || (number < 3 && version < 1) || (number === 3 && version < 2)) throw new DerError('unexpected field after the subject public key');
      last = number;
      if (number < 3) checkBitString(der, field);
      else extensions = extensionsByOid(der, expectTags(der, field, [TAG.sequence])[0]!);
    }
    const view = new CertificateView(
      der,
      sliceTlv(der, issuer),
      sliceTlv(der, subject),
      der.subarray(serial.start + (serial.end - serial.start > 1 && der[serial.start] === 0 ? 1 : 0), serial.end).toString('hex'),
      notBefore!,
      notAfter!,
      sliceTlv(der, spki),
      extensions,
    );
    view.readExtensions();
    return view;
  }

  /** RFC 4514 string of the subject, as @peculiar/x509 writes it. */
  get subject(): string {
    return (this.subjectText ??= new x509.Name(bytes(this.subjectDer)).toString());
  }

  /** RFC 4514 string of the issuer; a CA's name is written once and remembered, as every device of a line repeats it. */
  get issuer(): string {
    if (this.issuerText === undefined) {
      const key = this.issuerDer.toString('latin1');
      this.issuerText = issuerNames.get(key);
      if (this.issuerText === undefined) {
        this.issuerText = new x509.Name(bytes(this.issuerDer)).toString();
        if (issuerNames.size >= ISSUER_NAMES_LIMIT) issuerNames.clear();
        issuerNames.set(key, this.issuerText);
      }
    }
    return this.issuerText;
  }

  /** The whole Extension SEQUENCE with this OID, as encoded, or undefined. */
  extension(oid: string): Buffer | undefined {
    const extension = this.extensions.get(oid);
    return extension && sliceTlv(this.der, extension);
  }

  /** The value an extension's extnValue OCTET STRING holds, checked as DER; undefined without the extension. */
  private extensionValue(oid: string): { readonly der: Uint8Array; readonly value: TlvHeader } | undefined {
    const extension = this.extensions.get(oid);
    return extension && extensionValue(this.der, extension);
  }

  /**
   * Reads the extensions est-ra looks at, and those OpenSSL decodes to
   * judge a certificate (subjectAltName, authority and subject key
   * identifiers, CRL distribution points, name constraints: ossl_x509v3_cache_extensions marks a certificate invalid
   * when one does not decode), once, so a malformed one refuses the
   * certificate at parse time.
   */
  private readExtensions(): void {
    const subjectAltName = this.extensionValue('2.5.29.17');
    if (subjectAltName) checkGeneralNames(subjectAltName.der, subjectAltName.value);
    const authorityKeyIdentifier = this.extensionValue('2.5.29.35');
    if (authorityKeyIdentifier) checkAuthorityKeyIdentifier(authorityKeyIdentifier.der, authorityKeyIdentifier.value);
    const crlDistributionPoints = this.extensionValue('2.5.29.31');
    if (crlDistributionPoints) checkCrlDistributionPoints(crlDistributionPoints.der, crlDistributionPoints.value);
    const nameConstraints = this.extensionValue('2.5.29.30');
    if (nameConstraints) checkNameConstraints(nameConstraints.der, nameConstraints.value);
    const subjectKeyIdentifier = this.extensionValue('2.5.29.14');
    if (subjectKeyIdentifier && subjectKeyIdentifier.value.tag !== TAG.octetString) throw new DerError('malformed subjectKeyIdentifier');
    this.extendedKeyUsages();
    this.keyUsage();
    const basicConstraints = this.extensionValue(ID_CE_BASIC_CONSTRAINTS);
    if (basicConstraints) {
      // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER (0..MAX) OPTIONAL }
      const { der, value } = basicConstraints;
      const fields = value.tag === TAG.sequence ? children(der, value) : undefined;
      const expected = fields?.[0]?.tag === TAG.boolean ? [TAG.boolean, TAG.integer] : [TAG.integer];
      if (!fields || fields.length > expected.length || fields.some((field, i) => field.tag !== expected[i])) throw new DerError('malformed basicConstraints');
      // OpenSSL 3.0 marks a certificate with a negative pathLenConstraint invalid (RFC 5280 §4.2.1.9: 0..MAX).
      const pathLen = fields.find((field) => field.tag === TAG.integer);
      if (pathLen && readSmallInteger(der, pathLen) < 0) throw new DerError('negative pathLenConstraint');
    }
  }

  /**
   * The OIDs of the extendedKeyUsage extension (RFC 5280 §4.2.1.12), or
   * undefined when the certificate has none (any usage).
   */
  extendedKeyUsages(): string[] | undefined {
    const found = this.extensionValue('2.5.29.37');
    if (!found) return undefined;
    if (found.value.tag !== TAG.sequence) throw new DerError('malformed extendedKeyUsage');
    return children(found.der, found.value).map((oid) => dottedOid(found.der, oid));
  }

  /**
   * Whether this is a CA certificate as OpenSSL decides it (X509_check_ca
   * through node:crypto, read once): basicConstraints cA TRUE (RFC 5280
   * §4.2.1.9), keyCertSign where there is a keyUsage, and no extension
   * OpenSSL finds invalid (a pathLenConstraint without cA, for one).
   */
  isCa(): boolean {
    if (this.ca === undefined) {
      try {
        this.ca = new X509Certificate(this.der).ca;
      } catch {
        this.ca = false; // OpenSSL cannot read it: not a CA it would use
      }
    }
    return this.ca;
  }

  /** The keyUsage bits this code looks at (RFC 5280 §4.2.1.3), or undefined without the extension. */
  keyUsage(): { readonly keyCertSign: boolean } | undefined {
    const found = this.extensionValue('2.5.29.15');
    if (!found) return undefined;
    const bits = found.value;
    if (bits.tag !== TAG.bitString) throw new DerError('malformed keyUsage');
    // BIT STRING: unused-bits byte, then digitalSignature (bit 0) … keyCertSign (bit 5) in the first byte.
    return { keyCertSign: bits.end - bits.start > 1 && (found.der[bits.start + 1]! & 0x04) !== 0 };
  }

  /** The full parse, for the paths that need more than these fields; made once. */
  get x509(): x509.X509Certificate {
    return (this.full ??= new x509.X509Certificate(bytes(this.der)));
  }
}

const ISSUER_NAMES_LIMIT = 1024;
const issuerNames = new Map<string, string>();

const views = new WeakMap<x509.X509Certificate, CertificateView>();

/** The view of a long-lived parsed certificate (a CA, a trust anchor), made once. */
export function viewOf(certificate: x509.X509Certificate): CertificateView {
  let view = views.get(certificate);
  if (!view) {
    view = CertificateView.parse(Buffer.from(certificate.rawData));
    view.full = certificate;
    views.set(certificate, view);
  }
  return view;
}
