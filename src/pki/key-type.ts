import type { KeyObject } from 'node:crypto';
import { children, dottedOid, readTlv, TAG } from './der.js';

/**
 * Key type names as DigiCert's `allowed_key_types` spells them, so an admin
 * can paste a profile's list unchanged.
 */
export const KEY_TYPES = ['rsa_2048', 'rsa_3072', 'rsa_4096', 'p_256', 'p_384', 'p_521', 'ed_25519', 'ed_448'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

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
    return `key_${algorithmOid}`;
  } catch {
    return 'unreadable';
  }
}

/** The family decides the default key usage bits (RFC 5280 §4.2.1.3). */
export function keyFamily(keyType: string): 'rsa' | 'ecdsa' | 'eddsa' {
  if (keyType.startsWith('rsa_')) return 'rsa';
  if (keyType.startsWith('ed_')) return 'eddsa';
  return 'ecdsa';
}
