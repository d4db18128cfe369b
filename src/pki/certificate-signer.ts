import { createHash, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { x509 } from './x509.js';
import { WEBCRYPTO_CURVES } from './key-type.js';
import { bitString, children, contextTag, objectIdentifier, octetString, sequence, smallInteger, time, unsignedInteger, TAG } from './der.js';

/** The parts of a new certificate that differ from one certificate to the next. */
export interface CertificateContent {
  /** Positive serial as hex. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** DER Name, copied from the CSR or from the certificate being renewed. */
  readonly subject: Uint8Array;
  /** DER SubjectPublicKeyInfo from the CSR. */
  readonly subjectPublicKeyInfo: Uint8Array;
  /** DER Extensions (each a full Extension SEQUENCE) in the order to write them. */
  readonly extensions: readonly Uint8Array[];
}

interface SignatureScheme {
  /** AlgorithmIdentifier DER (RFC 5758 §3.2 for ECDSA: no parameters; RFC 4055 for RSA: NULL). */
  readonly algorithmIdentifier: Buffer;
  /** Digest for node:crypto sign, null for EdDSA. */
  readonly hash: string | null;
}

const NULL = Buffer.from([TAG.null, 0]);
const ecdsa = (oid: string, hash: string): SignatureScheme & { family: 'ec' } => ({ algorithmIdentifier: sequence(objectIdentifier(oid)), hash, family: 'ec' });
const rsa = (oid: string, hash: string): SignatureScheme & { family: 'rsa' } => ({
  algorithmIdentifier: sequence(objectIdentifier(oid), NULL),
  hash,
  family: 'rsa',
});

/**
 * Certificate signature algorithms by DigiCert's `signature_algorithm`
 * names, with their OIDs (RFC 5758 §3.2, RFC 4055 §5, RFC 8410 §3).
 */
export const SIGNATURE_ALGORITHMS = {
  sha256WithRSA: rsa('1.2.840.113549.1.1.11', 'sha256'),
  sha384WithRSA: rsa('1.2.840.113549.1.1.12', 'sha384'),
  sha512WithRSA: rsa('1.2.840.113549.1.1.13', 'sha512'),
  sha256WithECDSA: ecdsa('1.2.840.10045.4.3.2', 'sha256'),
  sha384WithECDSA: ecdsa('1.2.840.10045.4.3.3', 'sha384'),
  sha512WithECDSA: ecdsa('1.2.840.10045.4.3.4', 'sha512'),
  ed25519: { algorithmIdentifier: sequence(objectIdentifier('1.3.101.112')), hash: null, family: 'ed25519' },
} as const satisfies Record<string, SignatureScheme & { family: string }>;
export type SignatureAlgorithmName = keyof typeof SIGNATURE_ALGORITHMS;

/** match_issuer: the hash that matches the CA key's strength, as DigiCert does. */
const ISSUER_MATCH: Record<string, SignatureAlgorithmName> = {
  'P-256': 'sha256WithECDSA',
  'P-384': 'sha384WithECDSA',
  'P-521': 'sha512WithECDSA',
  rsa: 'sha256WithRSA',
  ed25519: 'ed25519',
};

const VERSION_3 = contextTag(0, smallInteger(2));
const SUBJECT_KEY_IDENTIFIER = objectIdentifier('2.5.29.14');

/**
 * Signs end-entity certificates for one issuing CA (RFC 5280 §4.1). The
 * TBSCertificate is assembled from DER (see der.ts for the measured reason)
 * and signed with node:crypto on the libuv thread pool, off the event loop.
 */
export class CertificateSigner {
  private constructor(
    private readonly key: KeyObject,
    private readonly scheme: SignatureScheme,
    private readonly issuerName: Buffer,
  ) {}

  /**
   * @param privateKeyPem the issuing CA's key, any PEM flavour openssl writes.
   * @param allowed the profile's `signature_algorithm`: match_issuer, or the
   *   algorithms it allows (the first one the CA's key can make is used).
   */
  static create(
    issuer: x509.X509Certificate,
    privateKeyPem: string,
    allowed: 'match_issuer' | readonly SignatureAlgorithmName[] = 'match_issuer',
  ): CertificateSigner {
    const key = createPrivateKey(privateKeyPem);
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const keyName = key.asymmetricKeyType === 'ec' ? WEBCRYPTO_CURVES[curve ?? ''] : key.asymmetricKeyType;
    const natural = ISSUER_MATCH[keyName ?? ''];
    if (!natural) throw new Error(`issuing CA key type ${key.asymmetricKeyType ?? 'unknown'} ${curve ?? ''} is not supported`);
    const family = SIGNATURE_ALGORITHMS[natural].family;
    const name = allowed === 'match_issuer' ? natural : allowed.find((candidate) => SIGNATURE_ALGORITHMS[candidate].family === family);
    if (!name) throw new Error(`signature_algorithm: the issuing CA's ${keyName ?? ''} key can make none of ${[allowed].flat().join(', ')}`);
    return new CertificateSigner(key, SIGNATURE_ALGORITHMS[name], Buffer.from(issuer.subjectName.toArrayBuffer()));
  }

  async sign(content: CertificateContent): Promise<Buffer> {
    const tbs = sequence(
      VERSION_3,
      unsignedInteger(Buffer.from(content.serialNumber, 'hex')),
      this.scheme.algorithmIdentifier,
      this.issuerName,
      sequence(time(content.notBefore), time(content.notAfter)),
      content.subject,
      content.subjectPublicKeyInfo,
      contextTag(3, sequence(...content.extensions)),
    );
    const signature = await new Promise<Buffer>((resolve, reject) => {
      sign(this.scheme.hash, tbs, this.key, (err, result) => (err ? reject(err) : resolve(result)));
    });
    return sequence(tbs, this.scheme.algorithmIdentifier, bitString(signature));
  }
}

/**
 * subjectKeyIdentifier by RFC 5280 §4.2.1.2 method (1): SHA-1 of the
 * subjectPublicKey BIT STRING's value, read from the SPKI DER.
 */
export function subjectKeyIdentifierExtension(subjectPublicKeyInfo: Uint8Array): Buffer {
  const [, publicKeyBits] = children(subjectPublicKeyInfo);
  // Skip the BIT STRING's unused-bits byte.
  const keyBytes = subjectPublicKeyInfo.subarray(publicKeyBits!.start + 1, publicKeyBits!.end);
  const keyId = createHash('sha1').update(keyBytes).digest();
  return sequence(SUBJECT_KEY_IDENTIFIER, octetString(octetString(keyId)));
}
