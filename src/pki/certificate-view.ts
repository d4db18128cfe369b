import { bytes, x509 } from './x509.js';
import { children, dottedOid, expectTags, extensionByOid, readTime, readTlv, sliceTlv, TAG, type TlvHeader } from './der.js';

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
    private readonly extensions: readonly TlvHeader[],
  ) {}

  /**
   * Reads a DER certificate. Throws on anything that is not one; the
   * signature is not checked here (see pki/signature.ts).
   */
  static parse(der: Buffer): CertificateView {
    const root = readTlv(der, 0);
    if (root.end !== der.length) throw new Error('malformed certificate: bytes after it');
    const [tbs] = expectTags(der, root, [TAG.sequence, TAG.sequence, TAG.bitString]);
    const fields = children(der, tbs);
    // version [0] EXPLICIT is absent in v1 certificates.
    const [serial, , issuer, validity, subject, spki, ...rest] = fields[0]?.tag === 0xa0 ? fields.slice(1) : fields;
    if (
      serial?.tag !== TAG.integer ||
      issuer?.tag !== TAG.sequence ||
      validity?.tag !== TAG.sequence ||
      subject?.tag !== TAG.sequence ||
      spki?.tag !== TAG.sequence
    ) {
      throw new Error('malformed certificate: unexpected TBSCertificate fields');
    }
    const [notBefore, notAfter] = children(der, validity);
    const extensionsField = rest.find((field) => field.tag === 0xa3);
    const extensions = extensionsField ? children(der, children(der, extensionsField)[0]) : [];
    return new CertificateView(
      der,
      sliceTlv(der, issuer),
      sliceTlv(der, subject),
      der.subarray(serial.start + (serial.end - serial.start > 1 && der[serial.start] === 0 ? 1 : 0), serial.end).toString('hex'),
      readTime(der, notBefore),
      readTime(der, notAfter),
      sliceTlv(der, spki),
      extensions,
    );
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
    return extensionByOid(this.der, this.extensions, oid);
  }

  /** The value an extension's extnValue OCTET STRING holds, with the bytes to read it in; undefined without the extension. */
  private extensionValue(oid: string, name: string): { readonly der: Buffer; readonly value: TlvHeader } | undefined {
    const extension = this.extension(oid);
    if (!extension) return undefined;
    const extnValue = children(extension, readTlv(extension, 0)).at(-1)!;
    if (extnValue.tag !== TAG.octetString) throw new Error(`malformed ${name}`);
    return { der: extension, value: readTlv(extension, extnValue.start, extnValue.end) };
  }

  /**
   * The OIDs of the extendedKeyUsage extension (RFC 5280 §4.2.1.12), or
   * undefined when the certificate has none (any usage).
   */
  extendedKeyUsages(): string[] | undefined {
    const found = this.extensionValue('2.5.29.37', 'extendedKeyUsage');
    return found && children(found.der, found.value).map((oid) => dottedOid(found.der, oid));
  }

  /** Whether this is a CA certificate: basicConstraints cA TRUE (RFC 5280 §4.2.1.9). */
  isCa(): boolean {
    const found = this.extensionValue('2.5.29.19', 'basicConstraints');
    const [cA] = found ? children(found.der, found.value) : [];
    return cA?.tag === 0x01 && found!.der[cA.start] !== 0;
  }

  /** The keyUsage bits this code looks at (RFC 5280 §4.2.1.3), or undefined without the extension. */
  keyUsage(): { readonly keyCertSign: boolean } | undefined {
    const found = this.extensionValue('2.5.29.15', 'keyUsage');
    if (!found) return undefined;
    const bits = found.value;
    if (bits.tag !== TAG.bitString) throw new Error('malformed keyUsage');
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
