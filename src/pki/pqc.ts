import { children, DerError, dottedOid, TAG } from './der.js';
import { PQC_KEY_TYPE_BY_OID, PQC_KEY_TYPES, type PqcKeyType } from './key-type.js';
import { verifyOnPqcThread } from './pqc-thread.js';

/*
 * Post-quantum keys and signatures: OpenSSL 3.0 (node:crypto) cannot load
 * ML-DSA or SLH-DSA keys, so a CSR with such a key is read here and its
 * signature checked by @noble/post-quantum (pki/pqc-verifiers.ts), on a
 * worker thread (pki/pqc-thread.ts), instead of in pki/signature.ts.
 */

/** A post-quantum public key read from a SubjectPublicKeyInfo. */
export interface PqcPublicKey {
  readonly keyType: PqcKeyType;
  /** The algorithm OID, dotted: the key's and its signatures' (the same identifier). */
  readonly oid: string;
  /** The raw public key (FIPS 204 pkEncode; FIPS 205 PK.seed || PK.root). */
  readonly key: Uint8Array;
}

/**
 * Reads a DER SubjectPublicKeyInfo (already checked to be SEQUENCE {
 * AlgorithmIdentifier, BIT STRING }) whose algorithm is an ML-DSA or SLH-DSA
 * OID. Undefined for any other algorithm. Throws DerError when the
 * AlgorithmIdentifier has parameters (they MUST be absent: RFC 9881 §2,
 * draft-ietf-lamps-x509-slhdsa §3) or the key is not exactly the set's size
 * in whole octets (RFC 9881 §4: the raw key is the BIT STRING's content).
 */
export function readPqcSpki(spki: Uint8Array): PqcPublicKey | undefined {
  const [algorithm, bits] = children(spki);
  const [oid, ...parameters] = algorithm ? children(spki, algorithm) : [];
  if (oid?.tag !== TAG.oid) return undefined;
  const dotted = dottedOid(spki, oid);
  const keyType = PQC_KEY_TYPE_BY_OID.get(dotted);
  if (!keyType) return undefined;
  if (parameters.length > 0) throw new DerError(`${keyType} AlgorithmIdentifier must not have parameters`);
  const { publicKeySize } = PQC_KEY_TYPES[keyType];
  if (bits?.tag !== TAG.bitString || bits.end - bits.start !== publicKeySize + 1 || spki[bits.start] !== 0) {
    throw new DerError(`${keyType} public key must be ${publicKeySize} octets`);
  }
  return { keyType, oid: dotted, key: spki.subarray(bits.start + 1, bits.end) };
}

/**
 * Checks the signature of a signed DER structure, SEQUENCE { signed,
 * AlgorithmIdentifier, signature BIT STRING } (a CSR, RFC 2986 §4), with a
 * post-quantum key: pure ML-DSA / SLH-DSA with the empty context string, as
 * RFC 9881 §3 and draft-ietf-lamps-x509-slhdsa §4 use them. Returns
 * `algorithm-mismatch` when the structure is not signed with the key's own
 * algorithm identifier (parameters absent), otherwise whether it verifies.
 */
export async function verifyPqcSignedDer(der: Uint8Array, key: PqcPublicKey): Promise<'valid' | 'invalid' | 'algorithm-mismatch'> {
  const [signed, algorithm, signature] = children(der);
  if (!signed || !algorithm || signature?.tag !== TAG.bitString || der[signature.start] !== 0) throw new DerError('not a signed structure');
  const fields = children(der, algorithm);
  if (fields.length !== 1 || fields[0]!.tag !== TAG.oid || dottedOid(der, fields[0]!) !== key.oid) return 'algorithm-mismatch';
  const message = der.subarray(signed.offset, signed.end);
  const value = der.subarray(signature.start + 1, signature.end); // after the unused-bits byte
  return (await verifyOnPqcThread(key.keyType, value, message, key.key)) ? 'valid' : 'invalid';
}
