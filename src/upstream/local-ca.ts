import { bytes, x509 } from '../pki/x509.js';
import type { VerifiedCsr } from '../pki/csr.js';
import { keyFamily } from '../pki/key-type.js';
import { EXTENDED_KEY_USAGE, keyUsageExtension, type ExtendedKeyUsageName, type KeyUsageName } from '../pki/certificate-builder.js';
import { CertificateSigner, subjectKeyIdentifierExtension, type CertificateContent, type SignatureAlgorithmName } from '../pki/certificate-signer.js';
import { newSerialNumber } from '../pki/serial.js';
import { identityOf } from '../pki/identity.js';
import type { CertificateView } from '../pki/certificate-view.js';
import { encodeSubject, encodeSubjectAltName } from '../pki/names.js';
import type { IssuedNames } from '../pki/names.js';
import type { IssuedCertificate, Upstream } from './types.js';

/** What the embedded CA puts into every certificate it issues for one profile. */
export interface IssuancePolicy {
  /** Certificate lifetime in milliseconds. */
  readonly validityMs: number;
  readonly keyUsage: { readonly rsa: readonly KeyUsageName[]; readonly ecdsa: readonly KeyUsageName[]; readonly eddsa: readonly KeyUsageName[] };
  readonly extendedKeyUsage: readonly ExtendedKeyUsageName[];
  /** DigiCert's signature_algorithm: match_issuer, or the allowed algorithms. */
  readonly signatureAlgorithm: 'match_issuer' | readonly SignatureAlgorithmName[];
}

/** Backdating absorbs small clock differences between est-ra and the devices (step-ca does the same). */
const BACKDATE_MS = 60_000;

type KeyFamily = ReturnType<typeof keyFamily>;

/** Extensions that are the same in every certificate of a profile, encoded once at start. */
interface FixedExtensions {
  readonly basicConstraints: Buffer;
  readonly keyUsage: Readonly<Record<KeyFamily, Buffer>>;
  readonly extendedKeyUsage?: Buffer;
  readonly authorityKeyIdentifier: Buffer;
}

/**
 * The embedded issuing CA: the default upstream, for demos and air-gapped
 * lines. It signs with a key held in this process.
 */
export class LocalCaUpstream implements Upstream {
  private constructor(
    private readonly signer: CertificateSigner,
    private readonly issuer: x509.X509Certificate,
    private readonly chain: readonly x509.X509Certificate[],
    private readonly fixed: FixedExtensions,
    private readonly validityMs: number,
    private readonly now: () => Date,
  ) {}

  /**
   * @param issuingKeyPem the issuing CA's private key (PEM)
   * @param chain the issuing CA first, then any CA certificates up to and including the root
   */
  static async create(
    issuingKeyPem: string,
    chain: readonly [x509.X509Certificate, ...x509.X509Certificate[]],
    policy: IssuancePolicy,
    now: () => Date,
  ): Promise<LocalCaUpstream> {
    const issuer = chain[0];
    const der = (extension: x509.Extension): Buffer => Buffer.from(extension.rawData);
    const fixed: FixedExtensions = {
      basicConstraints: der(new x509.BasicConstraintsExtension(false, undefined, true)),
      keyUsage: {
        rsa: der(keyUsageExtension(policy.keyUsage.rsa)),
        ecdsa: der(keyUsageExtension(policy.keyUsage.ecdsa)),
        eddsa: der(keyUsageExtension(policy.keyUsage.eddsa)),
        // ML-DSA and SLH-DSA keys only sign (RFC 9881 §5, draft-ietf-lamps-x509-slhdsa §6).
        pqc: der(keyUsageExtension(['digital_signature'])),
      },
      extendedKeyUsage:
        policy.extendedKeyUsage.length > 0
          ? der(new x509.ExtendedKeyUsageExtension(policy.extendedKeyUsage.map((name) => EXTENDED_KEY_USAGE[name])))
          : undefined,
      authorityKeyIdentifier: der(await x509.AuthorityKeyIdentifierExtension.create(issuer)),
    };
    const signer = CertificateSigner.create(issuer, issuingKeyPem, policy.signatureAlgorithm);
    return new LocalCaUpstream(signer, issuer, chain, fixed, policy.validityMs, now);
  }

  async caCertificates(): Promise<readonly x509.X509Certificate[]> {
    return this.chain;
  }

  /** Issues exactly the names the policy decided (enrollIdentity). */
  async simpleEnroll(csr: VerifiedCsr, _context: unknown, names: IssuedNames): Promise<IssuedCertificate> {
    return this.issue(csr, enrollIdentity(csr, names));
  }

  async simpleReenroll(current: CertificateView | undefined, csr: VerifiedCsr): Promise<IssuedCertificate> {
    return this.issue(csr, reenrollIdentity(current, csr));
  }

  /**
   * What simpleEnroll (with `names`) or simpleReenroll (with `current`)
   * would put into the certificate, built by the same code and not signed:
   * `est-ra simulate` shows it.
   */
  preview(operation: 'simpleenroll' | 'simplereenroll', csr: VerifiedCsr, names: IssuedNames, current: CertificateView | undefined): CertificatePreview {
    const identity = operation === 'simplereenroll' ? reenrollIdentity(current, csr) : enrollIdentity(csr, names);
    const { notBefore, notAfter, extensions } = this.content(csr, identity);
    return { subject: identity.subject.text, notBefore, notAfter, extensions };
  }

  private async issue(csr: VerifiedCsr, identity: CertificateIdentity): Promise<IssuedCertificate> {
    const content = this.content(csr, identity);
    const der = await this.signer.sign(content);
    return { der, serialNumber: content.serialNumber, subject: identity.subject.text, notBefore: content.notBefore, notAfter: content.notAfter };
  }

  private content(csr: VerifiedCsr, { subject, subjectAltName }: CertificateIdentity): CertificateContent {
    const now = this.now().getTime();
    // Whole seconds: X.509 times carry no fractions, and the record must match the certificate.
    const notBefore = new Date(Math.floor((now - BACKDATE_MS) / 1000) * 1000);
    // A certificate never outlives the CA that signs it (RFC 5280 §6.1.3 would reject it anyway).
    const notAfter = new Date(Math.floor(Math.min(now + this.validityMs, this.issuer.notAfter.getTime()) / 1000) * 1000);
    const subjectPublicKeyInfo = csr.subjectPublicKeyInfo;
    const extensions = [this.fixed.basicConstraints, this.fixed.keyUsage[keyFamily(csr.keyType)]];
    if (this.fixed.extendedKeyUsage) extensions.push(this.fixed.extendedKeyUsage);
    // Copied as encoded: the identity the device asked for (or held) is kept byte for byte.
    if (subjectAltName) extensions.push(subjectAltName);
    extensions.push(subjectKeyIdentifierExtension(subjectPublicKeyInfo), this.fixed.authorityKeyIdentifier);
    return { serialNumber: newSerialNumber(), notBefore, notAfter, subject: subject.der, subjectPublicKeyInfo, extensions };
  }
}

/** A certificate's subject (DER and text) and its whole subjectAltName Extension (DER, copied as is). */
interface CertificateIdentity {
  readonly subject: { readonly der: Buffer; readonly text: string };
  readonly subjectAltName: Buffer | undefined;
}

/** An unsigned certificate as `preview` gives it: extensions as DER Extension SEQUENCEs. */
export interface CertificatePreview {
  readonly subject: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extensions: readonly Uint8Array[];
}

/**
 * Exactly the names the policy decided: the CSR's own encoding of them when
 * they are what it asked for, otherwise a subject and subjectAltName written
 * anew. Nothing else from the CSR reaches the certificate (no extension it
 * asks for, no basicConstraints).
 */
function enrollIdentity(csr: VerifiedCsr, names: IssuedNames): CertificateIdentity {
  if (names.asRequested) return { subject: { der: csr.subjectDer, text: csr.subject }, subjectAltName: csr.subjectAltName };
  const subject = encodeSubject(names.subject);
  const subjectAltName = names.san.length > 0 ? encodeSubjectAltName(names.san, names.subject.length === 0) : undefined;
  return { subject: { der: subject, text: new x509.Name(bytes(subject)).toString() }, subjectAltName };
}

/** A renewal keeps the identity of the certificate it renews; a downstream RA's renewal (no `current`) the CSR's, which the RA vouched for. */
function reenrollIdentity(current: CertificateView | undefined, csr: VerifiedCsr): CertificateIdentity {
  if (!current) return { subject: { der: csr.subjectDer, text: csr.subject }, subjectAltName: csr.subjectAltName };
  const identity = identityOf(current);
  return { subject: { der: identity.subject, text: current.subject }, subjectAltName: identity.subjectAltName };
}
