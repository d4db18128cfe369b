import type { x509 } from './x509.js';

/**
 * Key type names as DigiCert's `allowed_key_types` spells them, so an admin
 * can paste a profile's list unchanged.
 */
export const KEY_TYPES = ['rsa_2048', 'rsa_3072', 'rsa_4096', 'p_256', 'p_384', 'p_521', 'ed_25519', 'ed_448'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

const CURVE_TO_KEY_TYPE: Record<string, KeyType> = { 'P-256': 'p_256', 'P-384': 'p_384', 'P-521': 'p_521' };

/**
 * Names the key type of a public key (a KeyType when it is one of those), or returns a descriptive string such as
 * `rsa_1024` or `ECDSA secp256k1` for a key outside the list (so a refusal
 * can say what was sent).
 */
export function keyTypeOf(publicKey: x509.PublicKey): string {
  const algorithm = publicKey.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
  switch (algorithm.name) {
    case 'RSASSA-PKCS1-v1_5':
    case 'RSA-PSS':
    case 'RSA-OAEP':
      return `rsa_${algorithm.modulusLength ?? 0}`;
    case 'ECDSA':
    case 'ECDH':
      return CURVE_TO_KEY_TYPE[algorithm.namedCurve ?? ''] ?? `ecdsa_${algorithm.namedCurve ?? 'unknown'}`;
    case 'Ed25519':
      return 'ed_25519';
    case 'Ed448':
      return 'ed_448';
    default:
      return algorithm.name.toLowerCase();
  }
}

/** The family decides the default key usage bits (RFC 5280 §4.2.1.3). */
export function keyFamily(keyType: string): 'rsa' | 'ecdsa' | 'eddsa' {
  if (keyType.startsWith('rsa_')) return 'rsa';
  if (keyType.startsWith('ed_')) return 'eddsa';
  return 'ecdsa';
}
