import { bytes, x509 } from '../pki/x509.js';
import type { VerifiedCsr } from '../pki/csr.js';
import { keyFamily } from '../pki/key-type.js';
import { EXTENDED_KEY_USAGE, keyUsageExtension, type ExtendedKeyUsageName, type KeyUsageName } from '../pki/certificate-builder.js';
import { CertificateSigner, subjectKeyIdentifierExtension, type SignatureAlgorithmName } from '../pki/certificate-signer.js';
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

  /**
   * Issues exactly the names the policy decided: the CSR's own encoding of
   * them when they are what it asked for, otherwise a subject and
   * subjectAltName written anew. Nothing else from the CSR reaches the
   * certificate (no extension it asks for, no basicConstraints).
   */
  async simpleEnroll(csr: VerifiedCsr, _context: unknown, names: IssuedNames): Promise<IssuedCertificate> {
    if (names.asRequested) return this.issue(csr, { der: csr.subjectDer, text: csr.subject }, csr.subjectAltName);
    const subject = encodeSubject(names.subject);
    const subjectAltName = names.san.length > 0 ? encodeSubjectAltName(names.san, names.subject.length === 0) : undefined;
    return this.issue(csr, { der: subject, text: new x509.Name(bytes(subject)).toString() }, subjectAltName);
  }

  async simpleReenroll(current: CertificateView | undefined, csr: VerifiedCsr): Promise<IssuedCertificate> {
    if (!current) return this.issue(csr, { der: csr.subjectDer, text: csr.subject }, csr.subjectAltName);
    const identity = identityOf(current);
    return this.issue(csr, { der: identity.subject, text: current.subject }, identity.subjectAltName);
  }

  /**
   * @param subject the subject as DER and as text
   * @param subjectAltName DER of a whole subjectAltName Extension, copied as is
   */
  private async issue(csr: VerifiedCsr, subject: { der: Buffer; text: string }, subjectAltName: Buffer | undefined): Promise<IssuedCertificate> {
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
    const serialNumber = newSerialNumber();
    const der = await this.signer.sign({
      serialNumber,
      notBefore,
      notAfter,
      subject: subject.der,
      subjectPublicKeyInfo,
      extensions,
    });
    return { der, serialNumber, subject: subject.text, notBefore, notAfter };
  }
}
