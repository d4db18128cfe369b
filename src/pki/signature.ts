import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { children, objectIdentifier, TAG } from './der.js';

/**
 * Signature algorithms checked straight with node:crypto, keyed by the DER of
 * their OID, with the digest to use (null: EdDSA hashes internally). Why not
 * @peculiar/x509's verify(): it imports the key through WebCrypto on every
 * call, which `npm run bench` measured as the larger part of a CSR check
 * (0.96 ms against 0.68 ms with this) and of the RA's check of an upstream
 * answer. RSA-PSS and anything else return undefined: callers then use the
 * library.
 */
const NODE_ALGORITHMS = new Map<string, string | null>(
  (
    [
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
    ] as const
  ).map(([oid, hash]) => [objectIdentifier(oid).toString('hex'), hash]),
);

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
  if (!signed || !algorithm || signature?.tag !== TAG.bitString) throw new Error('malformed DER: not a signed structure');
  const [algorithmOid] = children(der, algorithm);
  const hash = algorithmOid && NODE_ALGORITHMS.get(Buffer.from(der.subarray(algorithmOid.offset, algorithmOid.end)).toString('hex'));
  if (hash === undefined) return Promise.resolve(undefined);
  const data = der.subarray(signed.offset, signed.end);
  const value = der.subarray(signature.start + 1, signature.end); // after the unused-bits byte
  return new Promise((resolve, reject) => {
    verify(hash, data, publicKey, value, (err, ok) => (err ? reject(err) : resolve(ok)));
  });
}

const issuerKeys = new WeakMap<object, KeyObject>();

/** An issuer's public key as a KeyObject, imported once per certificate object (CA certificates are long-lived). */
export function issuerKey(issuer: { readonly subjectPublicKeyInfo: Buffer }): KeyObject {
  let key = issuerKeys.get(issuer);
  if (!key) {
    key = createPublicKey({ key: issuer.subjectPublicKeyInfo, format: 'der', type: 'spki' });
    issuerKeys.set(issuer, key);
  }
  return key;
}
