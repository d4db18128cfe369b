import type { KeyObject } from 'node:crypto';
import { x509, subtle } from './x509.js';
import { WEBCRYPTO_CURVES } from './key-type.js';

/** WebCrypto algorithm for generating and signing with a P-256 key: the embedded CA's only key type. */
export const P256: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const ECDSA_SHA256: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

export const KEY_USAGE = {
  digital_signature: x509.KeyUsageFlags.digitalSignature,
  non_repudiation: x509.KeyUsageFlags.nonRepudiation,
  key_encipherment: x509.KeyUsageFlags.keyEncipherment,
  data_encipherment: x509.KeyUsageFlags.dataEncipherment,
  key_agreement: x509.KeyUsageFlags.keyAgreement,
} as const;
export type KeyUsageName = keyof typeof KEY_USAGE;

/** DigiCert's extended key usage names (certificate profile `extended_key_usage`). */
export const EXTENDED_KEY_USAGE = {
  client_authentication: x509.ExtendedKeyUsage.clientAuth,
  server_authentication: x509.ExtendedKeyUsage.serverAuth,
  code_signing: x509.ExtendedKeyUsage.codeSigning,
  email_protection: x509.ExtendedKeyUsage.emailProtection,
  time_stamping: x509.ExtendedKeyUsage.timeStamping,
  ocsp_signing: x509.ExtendedKeyUsage.ocspSigning,
} as const;
export type ExtendedKeyUsageName = keyof typeof EXTENDED_KEY_USAGE;

export interface Signer {
  readonly certificate: x509.X509Certificate;
  readonly privateKey: CryptoKey;
}

/** A critical keyUsage extension with the named bits (RFC 5280 §4.2.1.3). */
export function keyUsageExtension(names: readonly KeyUsageName[]): x509.KeyUsagesExtension {
  let flags = 0;
  for (const name of names) flags |= KEY_USAGE[name];
  // Combined bit flags are a number the enum type cannot name.
  // eslint-disable-next-line @typescript-eslint/no-unsafe-enum-assignment
  return new x509.KeyUsagesExtension(flags, true);
}

export async function generateP256KeyPair(): Promise<CryptoKeyPair> {
  return subtle.generateKey(P256, true, ['sign', 'verify']);
}

/**
 * The WebCrypto import parameters of a key OpenSSL loaded (RSA, the NIST
 * curves, Ed25519), so @peculiar/x509 can sign with it; undefined otherwise.
 */
export function webCryptoAlgorithmOf(key: KeyObject): RsaHashedImportParams | EcKeyImportParams | Algorithm | undefined {
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const namedCurve = WEBCRYPTO_CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
      return namedCurve ? { name: 'ECDSA', namedCurve } : undefined;
    }
    case 'rsa':
      return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    case 'ed25519':
      return { name: 'Ed25519' };
    default:
      return undefined;
  }
}

/** PKCS#8 PEM of a private key, for files written 0600. */
export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** The signature algorithm that matches a CA key: SHA-256 for P-256 and RSA, SHA-384/512 for the larger curves. */
export function signingAlgorithmFor(key: CryptoKey): Algorithm | EcdsaParams {
  const algorithm = key.algorithm as EcKeyAlgorithm;
  if (algorithm.name !== 'ECDSA') return { name: algorithm.name, hash: 'SHA-256' };
  const hash = algorithm.namedCurve === 'P-384' ? 'SHA-384' : algorithm.namedCurve === 'P-521' ? 'SHA-512' : 'SHA-256';
  return { ...ECDSA_SHA256, hash };
}

export interface CaCertificateParams {
  subject: string;
  keys: CryptoKeyPair;
  /** Absent for a self-signed root. */
  issuer?: Signer;
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
  /** basicConstraints pathLenConstraint; absent for no limit. */
  pathLength?: number;
}

/** Builds a CA certificate (RFC 5280 §4.2.1.9, §4.2.1.3 keyCertSign + cRLSign). */
export async function buildCaCertificate(params: CaCertificateParams): Promise<x509.X509Certificate> {
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, params.pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
    await x509.SubjectKeyIdentifierExtension.create(params.keys.publicKey),
  ];
  if (params.issuer) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(params.issuer.certificate));
  return x509.X509CertificateGenerator.create({
    serialNumber: params.serialNumber,
    subject: params.subject,
    issuer: params.issuer ? params.issuer.certificate.subjectName : params.subject,
    notBefore: params.notBefore,
    notAfter: params.notAfter,
    publicKey: params.keys.publicKey,
    signingKey: params.issuer ? params.issuer.privateKey : params.keys.privateKey,
    signingAlgorithm: ECDSA_SHA256,
    extensions,
  });
}
