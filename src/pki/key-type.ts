import { children, dottedOid, expectTags, readTlv, TAG } from './der.js';

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

/**
 * Names the key type of a DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7): a
 * KeyType when it is one of those, or a description such as `rsa_1024` or
 * `ecdsa_secp256k1` for a key outside the list (so a refusal can say what
 * was sent). Read from the DER alone: importing the key costs ~0.1 ms
 * (OpenSSL 3 decoders), which the signature check pays once anyway.
 * Throws on DER that is not a SubjectPublicKeyInfo.
 */
export function keyTypeOfSpki(spki: Buffer): string {
  const [algorithm, key] = expectTags(spki, readTlv(spki, 0), [TAG.sequence, TAG.bitString]);
  const [oid, parameters] = children(spki, algorithm);
  if (oid?.tag !== TAG.oid) throw new Error('malformed SubjectPublicKeyInfo');
  const algorithmOid = dottedOid(spki, oid);
  switch (algorithmOid) {
    case ID_EC_PUBLIC_KEY: {
      const curve = parameters?.tag === TAG.oid ? dottedOid(spki, parameters) : 'unknown';
      return EC_CURVES.get(curve)?.keyType ?? `ecdsa_${curve}`;
    }
    case '1.2.840.113549.1.1.1':
    case '1.2.840.113549.1.1.10': {
      // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }, after the unused-bits byte.
      const rsaKey = readTlv(spki, key!.start + 1, key!.end);
      const [modulus] = expectTags(spki, rsaKey, [TAG.integer, TAG.integer]);
      let start = modulus!.start;
      while (start < modulus!.end - 1 && spki[start] === 0) start++;
      const bits = (modulus!.end - start - 1) * 8 + (32 - Math.clz32(spki[start]!));
      return `rsa_${bits}`;
    }
    case '1.3.101.112':
      return 'ed_25519';
    case '1.3.101.113':
      return 'ed_448';
    default:
      return `key_${algorithmOid}`;
  }
}

/** The family decides the default key usage bits (RFC 5280 §4.2.1.3). */
export function keyFamily(keyType: string): 'rsa' | 'ecdsa' | 'eddsa' {
  if (keyType.startsWith('rsa_')) return 'rsa';
  if (keyType.startsWith('ed_')) return 'eddsa';
  return 'ecdsa';
}
