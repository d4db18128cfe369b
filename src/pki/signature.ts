import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { children, DerError, dottedOid, objectIdentifier, TAG } from './der.js';
import { checkSignatureBits } from './x509-fields.js';
import { EC_CURVES, ID_EC_PUBLIC_KEY } from './key-type.js';

/**
 * Signature algorithms checked straight with node:crypto, keyed by the DER of
 * their OID, with the digest to use (null: EdDSA hashes internally). Why not
 * @peculiar/x509's verify(): it imports the key through WebCrypto on every
 * call, which `npm run bench` measured as the larger part of a CSR check
 * (0.96 ms against 0.68 ms with this) and of the RA's check of an upstream
 * answer. RSA-PSS and anything else return undefined: callers then use the
 * library.
 */
const NODE_ALGORITHM_LIST = [
  ['1.2.840.10045.4.1', 'sha1'],
  ['1.2.840.10045.4.3.2', 'sha256'],
  ['1.2.840.10045.4.3.3', 'sha384'],
  ['1.2.840.10045.4.3.4', 'sha512'],
  ['1.2.840.113549.1.1.5', 'sha1'],
  ['1.2.840.113549.1.1.11', 'sha256'],
  ['1.2.840.113549.1.1.12', 'sha384'],
  ['1.2.840.113549.1.1.13', 'sha512'],
  ['1.3.101.112', null],
  ['1.3.101.113', null],
] as const;
const NODE_ALGORITHMS = new Map<string, string | null>(NODE_ALGORITHM_LIST.map(([oid, hash]) => [objectIdentifier(oid).toString('hex'), hash]));

/** The same table by dotted OID, for callers that already hold the algorithm as text (pkijs, pki/path-validation.ts). */
const NODE_ALGORITHMS_BY_OID = new Map<string, string | null>(NODE_ALGORITHM_LIST);

/**
 * Checks `signature` over `data` with node:crypto for an algorithm of
 * NODE_ALGORITHMS given by its dotted OID; undefined for any other algorithm.
 */
export function verifyWithNode(algorithmOid: string, data: Uint8Array, signature: Uint8Array, publicKey: KeyObject): Promise<boolean> | undefined {
  const hash = NODE_ALGORITHMS_BY_OID.get(algorithmOid);
  if (hash === undefined) return undefined;
  return new Promise((resolve, reject) => {
    verify(hash, data, publicKey, signature, (err, ok) => (err ? reject(err) : resolve(ok)));
  });
}

/**
 * Checks the signature of a signed DER structure of the shape every X.509
 * object has, SEQUENCE { tbs, AlgorithmIdentifier, signature BIT STRING }
 * (a certificate, RFC 5280 §4.1; a CSR, RFC 2986 §4), with `publicKey`.
 * Resolves undefined when the algorithm is not one of NODE_ALGORITHMS.
 *
 * @example
 * await verifySignedDer(csrDer, { key: spkiDer, format: 'der', type: 'spki' }); // true
 */
export function verifySignedDer(der: Uint8Array, publicKey: KeyObject | { key: Buffer; format: 'der'; type: 'spki' }): Promise<boolean | undefined> {
  const [signed, algorithm, signature] = children(der);
  if (!signed || !algorithm || signature?.tag !== TAG.bitString) throw new DerError('not a signed structure');
  checkSignatureBits(der, signature);
  const [algorithmOid] = children(der, algorithm);
  const hash = algorithmOid && NODE_ALGORITHMS.get(Buffer.from(der.subarray(algorithmOid.offset, algorithmOid.end)).toString('hex'));
  if (hash === undefined) return Promise.resolve(undefined);
  const data = der.subarray(signed.offset, signed.end);
  const value = der.subarray(signature.start + 1, signature.end); // after the unused-bits byte
  return new Promise((resolve, reject) => {
    verify(hash, data, publicKey, value, (err, ok) => (err ? reject(err) : resolve(ok)));
  });
}

/**
 * Imports a DER SubjectPublicKeyInfo. An EC key on a NIST curve with an
 * uncompressed point goes in as a JWK: OpenSSL 3's DER decoders take ~0.12 ms
 * per key on these cores, the JWK path ~0.065 ms, and a CSR's key is new
 * on every enrollment. Anything else goes in as DER. Throws on a key that
 * cannot be loaded.
 */
export function importSpki(spki: Buffer): KeyObject {
  const [algorithm, key] = children(spki);
  const [oid, curveOid] = algorithm ? children(spki, algorithm) : [];
  const curve =
    oid?.tag === TAG.oid && dottedOid(spki, oid) === ID_EC_PUBLIC_KEY && curveOid?.tag === TAG.oid ? EC_CURVES.get(dottedOid(spki, curveOid))?.jwk : undefined;
  const point = key && spki.subarray(key.start + 1, key.end); // after the unused-bits byte
  if (curve && point?.length === 1 + 2 * curve.size && point[0] === 0x04) {
    const x = point.subarray(1, 1 + curve.size).toString('base64url');
    const y = point.subarray(1 + curve.size).toString('base64url');
    return createPublicKey({ key: { kty: 'EC', crv: curve.crv, x, y }, format: 'jwk' });
  }
  return createPublicKey({ key: spki, format: 'der', type: 'spki' });
}

const issuerKeys = new WeakMap<object, KeyObject>();

/** An issuer's public key as a KeyObject, imported once per certificate object (CA certificates are long-lived). */
export function issuerKey(issuer: { readonly subjectPublicKeyInfo: Buffer }): KeyObject {
  let key = issuerKeys.get(issuer);
  if (!key) {
    key = importSpki(issuer.subjectPublicKeyInfo);
    issuerKeys.set(issuer, key);
  }
  return key;
}

/**
 * The signatureAlgorithm OID of a signed DER structure (a CSR's proof of
 * possession, RFC 2986 §4); throws on DER that is not one.
 */
export function signatureAlgorithmOid(der: Buffer): string {
  const [, algorithm] = children(der);
  const [oid] = algorithm ? children(der, algorithm) : [];
  if (oid?.tag !== TAG.oid) throw new Error('malformed DER: no signature algorithm');
  return dottedOid(der, oid);
}
