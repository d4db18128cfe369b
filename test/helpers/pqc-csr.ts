import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { AlgorithmIdentifier, Name, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { ml_dsa44, ml_dsa65, ml_dsa87 } from '@noble/post-quantum/ml-dsa.js';
import * as slh from '@noble/post-quantum/slh-dsa.js';
import { x509 } from '../../src/pki/x509.js';

interface NobleSigner {
  keygen(): { publicKey: Uint8Array; secretKey: Uint8Array };
  sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array;
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}

/**
 * The post-quantum sets with their OIDs, transcribed here from RFC 9881 §2
 * (ML-DSA) and draft-ietf-lamps-x509-slhdsa §3 (SLH-DSA) independently of
 * src/pki/key-type.ts, so a wrong OID there cannot go unnoticed.
 */
export const PQC_SETS = {
  'MLDSA-44': { oid: '2.16.840.1.101.3.4.3.17', noble: ml_dsa44 },
  'MLDSA-65': { oid: '2.16.840.1.101.3.4.3.18', noble: ml_dsa65 },
  'MLDSA-87': { oid: '2.16.840.1.101.3.4.3.19', noble: ml_dsa87 },
  'SLHDSA-SHA2-128s': { oid: '2.16.840.1.101.3.4.3.20', noble: slh.slh_dsa_sha2_128s },
  'SLHDSA-SHA2-128f': { oid: '2.16.840.1.101.3.4.3.21', noble: slh.slh_dsa_sha2_128f },
  'SLHDSA-SHA2-192s': { oid: '2.16.840.1.101.3.4.3.22', noble: slh.slh_dsa_sha2_192s },
  'SLHDSA-SHA2-192f': { oid: '2.16.840.1.101.3.4.3.23', noble: slh.slh_dsa_sha2_192f },
  'SLHDSA-SHA2-256s': { oid: '2.16.840.1.101.3.4.3.24', noble: slh.slh_dsa_sha2_256s },
  'SLHDSA-SHA2-256f': { oid: '2.16.840.1.101.3.4.3.25', noble: slh.slh_dsa_sha2_256f },
  'SLHDSA-SHAKE-128s': { oid: '2.16.840.1.101.3.4.3.26', noble: slh.slh_dsa_shake_128s },
  'SLHDSA-SHAKE-128f': { oid: '2.16.840.1.101.3.4.3.27', noble: slh.slh_dsa_shake_128f },
  'SLHDSA-SHAKE-192s': { oid: '2.16.840.1.101.3.4.3.28', noble: slh.slh_dsa_shake_192s },
  'SLHDSA-SHAKE-192f': { oid: '2.16.840.1.101.3.4.3.29', noble: slh.slh_dsa_shake_192f },
  'SLHDSA-SHAKE-256s': { oid: '2.16.840.1.101.3.4.3.30', noble: slh.slh_dsa_shake_256s },
  'SLHDSA-SHAKE-256f': { oid: '2.16.840.1.101.3.4.3.31', noble: slh.slh_dsa_shake_256f },
} as const satisfies Record<string, { oid: string; noble: NobleSigner }>;
export type PqcSet = keyof typeof PQC_SETS;

export interface PqcKeyPair {
  readonly set: PqcSet;
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
  /** Pure ML-DSA / SLH-DSA signature with the empty context string. */
  sign(message: Uint8Array): Uint8Array;
}

export function pqcKeyPair(set: PqcSet): PqcKeyPair {
  const noble: NobleSigner = PQC_SETS[set].noble;
  const { publicKey, secretKey } = noble.keygen();
  return { set, publicKey, secretKey, sign: (message) => noble.sign(message, secretKey) };
}

/**
 * DER SubjectPublicKeyInfo of a PQC key: the set's OID, parameters absent, the
 * raw key as the BIT STRING (RFC 9881 §4). `parameters` (DER) breaks that rule.
 */
export function pqcSpki(set: PqcSet, publicKey: Uint8Array, parameters?: Buffer): Buffer {
  const algorithm = new AlgorithmIdentifier({ algorithm: PQC_SETS[set].oid, parameters: parameters && toArrayBuffer(parameters) });
  const spki = new SubjectPublicKeyInfo({ algorithm, subjectPublicKey: toArrayBuffer(publicKey) });
  return Buffer.from(AsnConvert.serialize(spki));
}

/**
 * A PKCS#10 request (RFC 2986) for a post-quantum key, built with
 * @peculiar/asn1-csr and signed with noble, as OpenSSL 3.0 cannot make one.
 * `signer` signs instead of the key's own pair (a forged proof of possession);
 * `spki` replaces the key's SubjectPublicKeyInfo.
 */
export function pqcCsr(key: PqcKeyPair, options: { subject?: string; signer?: PqcKeyPair; spki?: Buffer } = {}): Buffer {
  const subject = AsnConvert.parse(new x509.Name(options.subject ?? 'CN=pqc-device').toArrayBuffer(), Name);
  const info = new CertificationRequestInfo({
    subject,
    subjectPKInfo: AsnConvert.parse(options.spki ?? pqcSpki(key.set, key.publicKey), SubjectPublicKeyInfo),
  });
  const signed = new Uint8Array(AsnConvert.serialize(info));
  const signature = (options.signer ?? key).sign(signed);
  const request = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: PQC_SETS[key.set].oid }),
    signature: toArrayBuffer(signature),
  });
  const der = Buffer.from(AsnConvert.serialize(request));
  if (!der.includes(Buffer.from(signed))) throw new Error('asn1-csr re-encoded the signed CertificationRequestInfo');
  return der;
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
