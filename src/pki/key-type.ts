import type { KeyObject } from 'node:crypto';
import { children, dottedOid, readTlv, TAG } from './der.js';

/**
 * Post-quantum signature key types, spelled as DigiCert's `allowed_key_types`
 * spells the SLH-DSA sets (`SLHDSA-SHA2-128s`) and ML-DSA in the same style,
 * with their NIST CSOR OIDs (sigAlgs 2.16.840.1.101.3.4.3: ML-DSA 17..19,
 * RFC 9881 §2; SLH-DSA 20..31, draft-ietf-lamps-x509-slhdsa §3) and the
 * exact size of their raw public key (FIPS 204 Table 2: 1312/1952/2592
 * bytes; FIPS 205 §9.1: PK.seed || PK.root, 2n bytes with n = 16/24/32), and
 * of their signatures (FIPS 204 Table 2, FIPS 205 Table 2).
 * The same OID names the key and the signature; parameters are absent.
 */
export const PQC_KEY_TYPES = {
  'MLDSA-44': { oid: '2.16.840.1.101.3.4.3.17', publicKeySize: 1312, signatureSize: 2420 },
  'MLDSA-65': { oid: '2.16.840.1.101.3.4.3.18', publicKeySize: 1952, signatureSize: 3309 },
  'MLDSA-87': { oid: '2.16.840.1.101.3.4.3.19', publicKeySize: 2592, signatureSize: 4627 },
  'SLHDSA-SHA2-128s': { oid: '2.16.840.1.101.3.4.3.20', publicKeySize: 32, signatureSize: 7856 },
  'SLHDSA-SHA2-128f': { oid: '2.16.840.1.101.3.4.3.21', publicKeySize: 32, signatureSize: 17088 },
  'SLHDSA-SHA2-192s': { oid: '2.16.840.1.101.3.4.3.22', publicKeySize: 48, signatureSize: 16224 },
  'SLHDSA-SHA2-192f': { oid: '2.16.840.1.101.3.4.3.23', publicKeySize: 48, signatureSize: 35664 },
  'SLHDSA-SHA2-256s': { oid: '2.16.840.1.101.3.4.3.24', publicKeySize: 64, signatureSize: 29792 },
  'SLHDSA-SHA2-256f': { oid: '2.16.840.1.101.3.4.3.25', publicKeySize: 64, signatureSize: 49856 },
  'SLHDSA-SHAKE-128s': { oid: '2.16.840.1.101.3.4.3.26', publicKeySize: 32, signatureSize: 7856 },
  'SLHDSA-SHAKE-128f': { oid: '2.16.840.1.101.3.4.3.27', publicKeySize: 32, signatureSize: 17088 },
  'SLHDSA-SHAKE-192s': { oid: '2.16.840.1.101.3.4.3.28', publicKeySize: 48, signatureSize: 16224 },
  'SLHDSA-SHAKE-192f': { oid: '2.16.840.1.101.3.4.3.29', publicKeySize: 48, signatureSize: 35664 },
  'SLHDSA-SHAKE-256s': { oid: '2.16.840.1.101.3.4.3.30', publicKeySize: 64, signatureSize: 29792 },
  'SLHDSA-SHAKE-256f': { oid: '2.16.840.1.101.3.4.3.31', publicKeySize: 64, signatureSize: 49856 },
} as const satisfies Record<string, { readonly oid: string; readonly publicKeySize: number; readonly signatureSize: number }>;
export type PqcKeyType = keyof typeof PQC_KEY_TYPES;

/**
 * Key type names as DigiCert's `allowed_key_types` spells them, so an admin
 * can paste a profile's list unchanged. rsa_1024 is accepted only where a
 * profile names it (no default includes it; `check-config` warns).
 */
export const KEY_TYPES = [
  'rsa_1024',
  'rsa_2048',
  'rsa_3072',
  'rsa_4096',
  'p_256',
  'p_384',
  'p_521',
  'ed_25519',
  'ed_448',
  ...(Object.keys(PQC_KEY_TYPES) as PqcKeyType[]),
] as const;
export type KeyType = (typeof KEY_TYPES)[number];

/** FIPS 204/205's own spellings (`ML-DSA-65`, `SLH-DSA-SHA2-128s`), accepted in the configuration for the names above. */
export const KEY_TYPE_ALIASES: Readonly<Record<string, PqcKeyType>> = Object.fromEntries(
  (Object.keys(PQC_KEY_TYPES) as PqcKeyType[]).map((name) => [name.replace(/^(ML|SLH)DSA-/, '$1-DSA-'), name]),
);

/** PQC key types by their OID (dotted). */
export const PQC_KEY_TYPE_BY_OID: ReadonlyMap<string, PqcKeyType> = new Map(
  (Object.entries(PQC_KEY_TYPES) as [PqcKeyType, { oid: string }][]).map(([name, { oid }]) => [oid, name]),
);

export function isPqcKeyType(keyType: string): keyType is PqcKeyType {
  return Object.hasOwn(PQC_KEY_TYPES, keyType);
}

export const ID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';

/** Named curves by OID: the key type name, and for the NIST curves the JWK name and coordinate size (pki/signature.ts). */
export const EC_CURVES: ReadonlyMap<string, { readonly keyType: string; readonly jwk?: { readonly crv: string; readonly size: number } }> = new Map([
  ['1.2.840.10045.3.1.7', { keyType: 'p_256', jwk: { crv: 'P-256', size: 32 } }],
  ['1.3.132.0.34', { keyType: 'p_384', jwk: { crv: 'P-384', size: 48 } }],
  ['1.3.132.0.35', { keyType: 'p_521', jwk: { crv: 'P-521', size: 66 } }],
  ['1.3.132.0.10', { keyType: 'ecdsa_secp256k1' }],
]);

/** OpenSSL's names of the NIST curves (KeyObject asymmetricKeyDetails.namedCurve) to WebCrypto's. */
export const WEBCRYPTO_CURVES: Readonly<Record<string, string>> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** OpenSSL's curve names (KeyObject asymmetricKeyDetails.namedCurve) to key type names. */
const CURVE_KEY_TYPES: Readonly<Record<string, string>> = {
  prime256v1: 'p_256',
  secp384r1: 'p_384',
  secp521r1: 'p_521',
  secp256k1: 'ecdsa_secp256k1',
};

/**
 * Names the key type of a public key as OpenSSL loaded it: a KeyType when
 * it is one of those, or a description such as `rsa_1024` or
 * `ecdsa_secp256k1` for a key outside the list (so a refusal can say what
 * was sent). Taken from the KeyObject, not from a second reading of the
 * key's DER, so est-ra and OpenSSL never disagree on what a key is.
 */
export function keyTypeOfKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      return `rsa_${details.modulusLength ?? 0}`;
    case 'ec':
      return CURVE_KEY_TYPES[details.namedCurve ?? ''] ?? `ecdsa_${details.namedCurve ?? 'unknown'}`;
    case 'ed25519':
      return 'ed_25519';
    case 'ed448':
      return 'ed_448';
    default:
      return `key_${key.asymmetricKeyType ?? 'unknown'}`;
  }
}

/**
 * Describes the key of a DER SubjectPublicKeyInfo that could not be loaded,
 * for the refusal: `ecdsa_<curve OID>`, `key_<algorithm OID>`. Never throws.
 */
export function describeSpki(spki: Buffer): string {
  try {
    const [algorithm] = children(spki, readTlv(spki, 0));
    const [oid, parameters] = children(spki, algorithm);
    const algorithmOid = dottedOid(spki, oid!);
    if (algorithmOid === ID_EC_PUBLIC_KEY) {
      const curve = parameters?.tag === TAG.oid ? dottedOid(spki, parameters) : 'unknown';
      return EC_CURVES.get(curve)?.keyType ?? `ecdsa_${curve}`;
    }
    return PQC_KEY_TYPE_BY_OID.get(algorithmOid) ?? `key_${algorithmOid}`;
  } catch {
    return 'unreadable';
  }
}

/**
 * The family decides the default key usage bits (RFC 5280 §4.2.1.3). A
 * post-quantum key only signs: its certificate gets digitalSignature
 * (RFC 9881 §5, draft-ietf-lamps-x509-slhdsa §6 forbid the encipherment and
 * key agreement bits).
 */
export function keyFamily(keyType: string): 'rsa' | 'ecdsa' | 'eddsa' | 'pqc' {
  if (keyType.startsWith('rsa_')) return 'rsa';
  if (keyType.startsWith('ed_')) return 'eddsa';
  if (isPqcKeyType(keyType)) return 'pqc';
  return 'ecdsa';
}
