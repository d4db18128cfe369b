import { createHash, createPublicKey, generateKeyPair, sign, webcrypto, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { bytes, subtle, x509 } from './x509.js';
import { signingAlgorithmFor, webCryptoAlgorithmOf } from './certificate-builder.js';
import { parseAndVerifyCsr, type VerifiedCsr } from './csr.js';
import { SIGNATURE_ALGORITHMS } from './certificate-signer.js';
import { bitString, children, contextTag, objectIdentifier, sequence, set, smallInteger } from './der.js';
import type { CertificateView } from './certificate-view.js';

/**
 * Server-side key generation (RFC 7030 §4.4): a new key of a profile's key
 * type by node:crypto, the request est-ra makes for it, and the encrypted
 * form of its private key (CMS by pkijs). The private key lives only in the
 * KeyObject the caller holds while it answers; nothing here keeps it.
 */

const generate = promisify(generateKeyPair);

/** A new key pair of a KeyType name (pki/key-type.ts), generated off the event loop (libuv's pool: RSA takes tens of ms). */
export async function generateServerKey(keyType: string): Promise<KeyObject> {
  const rsa = /^rsa_(\d+)$/.exec(keyType);
  if (rsa) return (await generate('rsa', { modulusLength: Number(rsa[1]), publicExponent: 65537 })).privateKey;
  switch (keyType) {
    case 'p_256':
      return (await generate('ec', { namedCurve: 'prime256v1' })).privateKey;
    case 'p_384':
      return (await generate('ec', { namedCurve: 'secp384r1' })).privateKey;
    case 'p_521':
      return (await generate('ec', { namedCurve: 'secp521r1' })).privateKey;
    case 'ed_25519':
      return (await generate('ed25519')).privateKey;
    case 'ed_448':
      return (await generate('ed448')).privateKey;
    default:
      throw new Error(`cannot generate a key of type ${keyType}`);
  }
}

/** The names a certificate for the new key carries, as the policy decided them: a DER Name and an optional subjectAltName Extension. */
export interface ServerKeyNames {
  readonly subjectDer: Buffer;
  readonly subjectAltName?: Buffer;
}

/**
 * A PKCS#10 request for the new key with the decided names and nothing else,
 * signed by that key: what the local CA issues from and what an upstream is
 * sent (its simpleenroll, RFC 7030 §4.2.1), so both issue for the new key
 * exactly as for any CSR. `openssl req -verify` accepts it (test/unit/server-key.spec.ts).
 */
export async function requestForServerKey(key: KeyObject, names: ServerKeyNames): Promise<VerifiedCsr> {
  const scheme = csrSignatureFor(key);
  // RFC 2986 §4: version 0, subject, key, [0] attributes (an extensionRequest with the subjectAltName, or none).
  const attributes = names.subjectAltName ? [sequence(EXTENSION_REQUEST, set(sequence(names.subjectAltName)))] : [];
  const info = sequence(smallInteger(0), names.subjectDer, createPublicKey(key).export({ type: 'spki', format: 'der' }), contextTag(0, ...attributes));
  const signature = await new Promise<Buffer>((resolve, reject) => {
    sign(scheme.hash, info, key, (err, result) => (err ? reject(err) : resolve(result)));
  });
  // Assembled from DER and signed by node:crypto: @peculiar/x509's generator took 3 ms of CPU for a P-256
  // request (measured), 30 times the key generation. Signed just now by est-ra itself: only the parse is needed.
  return parseAndVerifyCsr(sequence(info, scheme.algorithmIdentifier, bitString(signature)), { signatureVerified: true });
}

const EXTENSION_REQUEST = objectIdentifier('1.2.840.113549.1.9.14');

/** The signature a CSR for the key is made with: SHA-2 matched to the curve (RFC 5758), SHA-256 for RSA, EdDSA (RFC 8410). */
function csrSignatureFor(key: KeyObject): { readonly algorithmIdentifier: Buffer; readonly hash: string | null } {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return SIGNATURE_ALGORITHMS.sha256WithRSA;
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      return curve === 'secp384r1'
        ? SIGNATURE_ALGORITHMS.sha384WithECDSA
        : curve === 'secp521r1'
          ? SIGNATURE_ALGORITHMS.sha512WithECDSA
          : SIGNATURE_ALGORITHMS.sha256WithECDSA;
    }
    case 'ed25519':
      return SIGNATURE_ALGORITHMS.ed25519;
    case 'ed448':
      return { algorithmIdentifier: sequence(objectIdentifier('1.3.101.113')), hash: null };
    default:
      throw new Error(`cannot sign a CSR with a ${key.asymmetricKeyType ?? 'unknown'} key`);
  }
}

/** The private key as `application/pkcs8` carries it: DER PrivateKeyInfo (RFC 5958 OneAsymmetricKey v1). */
export function pkcs8Of(key: KeyObject): Buffer {
  return key.export({ type: 'pkcs8', format: 'der' });
}

/** Who signs the key package: est-ra, by its TLS server certificate and key (the identity the client checked over TLS). */
export interface KeyPackageSigner {
  readonly certificate: Buffer;
  readonly key: KeyObject;
}

const ID_SIGNED_DATA = '1.2.840.113549.1.7.2';
const ID_ENVELOPED_DATA = '1.2.840.113549.1.7.3';
/** id-ct-KP-aKeyPackage (RFC 5958 §3). */
const ID_CT_KP_A_KEY_PACKAGE = '2.16.840.1.101.2.1.2.78.5';
const ID_CONTENT_TYPE = '1.2.840.113549.1.9.3';
const ID_MESSAGE_DIGEST = '1.2.840.113549.1.9.4';

const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto });

/**
 * The encrypted private key of RFC 7030 §4.4.2: an AsymmetricKeyPackage
 * (RFC 5958 §2) holding the key, in a SignedData signed by `signer` (the
 * party that generated the key), in an EnvelopedData (RFC 5652 §6) for
 * `recipient`: key transport with RSA-OAEP to an RSA certificate, ECDH key
 * agreement to an EC one (pkijs chooses by the key), content in AES-256-CBC.
 * `openssl cms -decrypt -inform DER -recip cert.pem -inkey key.pem` opens it
 * to the SignedData; `openssl cms -verify` of it (in a ContentInfo) gives the package.
 */
export async function envelopeServerKey(privateKeyInfo: Buffer, recipient: Buffer, signer: KeyPackageSigner): Promise<Buffer> {
  const signedData = await signKeyPackage(sequence(privateKeyInfo), signer);
  const enveloped = new pkijs.EnvelopedData();
  enveloped.addRecipientByCertificate(
    pkijs.Certificate.fromBER(bytes(recipient)),
    { oaepHashAlgorithm: 'SHA-256', kdfAlgorithm: 'SHA-256' },
    undefined,
    engine,
  );
  await enveloped.encrypt({ name: 'AES-CBC', length: 256 } as Algorithm, bytes(signedData).slice().buffer, engine);
  enveloped.encryptedContentInfo.contentType = ID_SIGNED_DATA;
  return Buffer.from(new pkijs.ContentInfo({ contentType: ID_ENVELOPED_DATA, content: enveloped.toSchema() }).toSchema().toBER());
}

/**
 * SignedData over the key package, with the signed attributes RFC 5652
 * §5.3 requires for a content type other than id-data (contentType, then
 * messageDigest: DER order, which OpenSSL re-encodes to verify).
 */
async function signKeyPackage(keyPackage: Buffer, signer: KeyPackageSigner): Promise<Buffer> {
  const algorithm = webCryptoAlgorithmOf(signer.key);
  if (!algorithm) throw new Error(`cannot sign the key package with a ${signer.key.asymmetricKeyType ?? 'unknown'} key`);
  const privateKey = await subtle.importKey('pkcs8', bytes(signer.key.export({ type: 'pkcs8', format: 'der' })), algorithm, false, ['sign']);
  const certificate = pkijs.Certificate.fromBER(bytes(signer.certificate));
  const hash = (signingAlgorithmFor(privateKey) as { hash: string }).hash;
  const digest = createHash(hash.replace('-', '').toLowerCase()).update(keyPackage).digest();
  const signedData = new pkijs.SignedData({
    version: 3,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({
      eContentType: ID_CT_KP_A_KEY_PACKAGE,
      eContent: new asn1js.OctetString({ valueHex: bytes(keyPackage) }),
    }),
    certificates: [certificate],
    signerInfos: [
      new pkijs.SignerInfo({
        version: 1,
        sid: new pkijs.IssuerAndSerialNumber({ issuer: certificate.issuer, serialNumber: certificate.serialNumber }),
        signedAttrs: new pkijs.SignedAndUnsignedAttributes({
          type: 0,
          attributes: [
            new pkijs.Attribute({ type: ID_CONTENT_TYPE, values: [new asn1js.ObjectIdentifier({ value: ID_CT_KP_A_KEY_PACKAGE })] }),
            new pkijs.Attribute({ type: ID_MESSAGE_DIGEST, values: [new asn1js.OctetString({ valueHex: bytes(digest) })] }),
          ],
        }),
      }),
    ],
  });
  await signedData.sign(privateKey, 0, hash, undefined, engine);
  // The content itself, as CMS nests one content type in another (RFC 5652 §6.1): no second ContentInfo.
  return Buffer.from((signedData.toSchema(true) as asn1js.Sequence).toBER());
}

/**
 * Whether `identifier` names the certificate's key: its subjectKeyIdentifier,
 * or for a certificate without one the SHA-1 of its public key bits (RFC 5280
 * §4.2.1.2 method 1), as AsymmetricDecryptKeyIdentifier names a key (RFC 7030 §4.4.1.2).
 */
export function isKeyIdentifierOf(certificate: CertificateView, identifier: Buffer): boolean {
  const keyId = certificate.x509.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  if (keyId !== undefined) return Buffer.from(keyId, 'hex').equals(identifier);
  const spki = certificate.subjectPublicKeyInfo;
  const [, subjectPublicKey] = children(spki);
  // The BIT STRING's content after its unused-bits octet.
  return createHash('sha1')
    .update(spki.subarray(subjectPublicKey!.start + 1, subjectPublicKey!.end))
    .digest()
    .equals(identifier);
}
