import { x509 } from '../pki/x509.js';
import type { VerifiedCsr } from '../pki/csr.js';
import { keyFamily } from '../pki/key-type.js';
import { EXTENDED_KEY_USAGE, keyUsageExtension, signingAlgorithmFor, type ExtendedKeyUsageName, type KeyUsageName, type Signer } from '../pki/certificate-builder.js';
import { newSerialNumber } from '../pki/serial.js';
import type { IssuedCertificate, Upstream } from './types.js';

/** What the embedded CA puts into every certificate it issues for one profile. */
export interface IssuancePolicy {
  /** Certificate lifetime in milliseconds. */
  readonly validityMs: number;
  readonly keyUsage: { readonly rsa: readonly KeyUsageName[]; readonly ecdsa: readonly KeyUsageName[]; readonly eddsa: readonly KeyUsageName[] };
  readonly extendedKeyUsage: readonly ExtendedKeyUsageName[];
}

/** Backdating absorbs small clock differences between est-ra and the devices (step-ca does the same). */
const BACKDATE_MS = 60_000;

/**
 * The embedded issuing CA: the default upstream, for demos and air-gapped
 * lines. It signs with a key held in this process.
 */
export class LocalCaUpstream implements Upstream {
  private constructor(
    private readonly issuer: Signer,
    private readonly chainDer: readonly Buffer[],
    private readonly authorityKeyIdentifier: x509.AuthorityKeyIdentifierExtension,
    private readonly policy: IssuancePolicy,
    private readonly now: () => Date,
  ) {}

  /** @param chain the issuing CA first, then any CA certificates up to and including the root. */
  static async create(issuer: Signer, chain: readonly x509.X509Certificate[], policy: IssuancePolicy, now: () => Date): Promise<LocalCaUpstream> {
    // Computed once: it is the same for every certificate this CA issues.
    const aki = await x509.AuthorityKeyIdentifierExtension.create(issuer.certificate);
    return new LocalCaUpstream(issuer, chain.map((c) => Buffer.from(c.rawData)), aki, policy, now);
  }

  async caCertificates(): Promise<readonly Buffer[]> {
    return this.chainDer;
  }

  async simpleEnroll(csr: VerifiedCsr): Promise<IssuedCertificate> {
    return this.issue(csr, csr.request.subjectName, csr.subjectAltName);
  }

  async simpleReenroll(current: x509.X509Certificate, csr: VerifiedCsr): Promise<IssuedCertificate> {
    const currentSan = current.getExtension(x509.SubjectAlternativeNameExtension) ?? undefined;
    return this.issue(csr, current.subjectName, currentSan);
  }

  private async issue(csr: VerifiedCsr, subject: x509.Name, subjectAltName: x509.SubjectAlternativeNameExtension | undefined): Promise<IssuedCertificate> {
    const now = this.now().getTime();
    // A certificate never outlives the CA that signs it (RFC 5280 §6.1.3 would reject it anyway).
    const notAfter = new Date(Math.min(now + this.policy.validityMs, this.issuer.certificate.notAfter.getTime()));
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      keyUsageExtension(this.policy.keyUsage[keyFamily(csr.keyType)]),
      await x509.SubjectKeyIdentifierExtension.create(csr.request.publicKey),
      this.authorityKeyIdentifier,
    ];
    if (this.policy.extendedKeyUsage.length > 0) {
      extensions.push(new x509.ExtendedKeyUsageExtension(this.policy.extendedKeyUsage.map((name) => EXTENDED_KEY_USAGE[name])));
    }
    // Copied as encoded: the identity the device asked for (or held) is kept byte for byte.
    if (subjectAltName) extensions.push(subjectAltName);
    const certificate = await x509.X509CertificateGenerator.create({
      serialNumber: newSerialNumber(),
      subject,
      issuer: this.issuer.certificate.subjectName,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter,
      publicKey: csr.request.publicKey,
      signingKey: this.issuer.privateKey,
      signingAlgorithm: signingAlgorithmFor(this.issuer.privateKey),
      extensions,
    });
    return { der: Buffer.from(certificate.rawData), certificate };
  }
}
