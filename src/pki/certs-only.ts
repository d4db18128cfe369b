import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { bytes } from './x509.js';
import { children, contextTag, DerError, expectTags, objectIdentifier, readTlv, sequence, set, smallInteger, TAG } from './der.js';

const ID_DATA = '1.2.840.113549.1.7.1';
const ID_SIGNED_DATA = '1.2.840.113549.1.7.2';

// Everything but the certificates is the same in every certs-only message.
const SIGNED_DATA_OID = objectIdentifier(ID_SIGNED_DATA);
const VERSION_1 = smallInteger(1);
const NO_DIGEST_ALGORITHMS = set();
const ENCAP_CONTENT_INFO_DATA = sequence(objectIdentifier(ID_DATA));
const NO_SIGNER_INFOS = set();

/**
 * Builds a certs-only CMS SignedData ("degenerate PKCS#7": no content, no
 * signers, just certificates) from DER certificates, as EST answers /cacerts
 * and /simpleenroll (RFC 7030 §4.1.3, §4.2.3; RFC 5652 §5.1). Assembled from
 * fixed DER around the certificates (see der.ts for the measured reason).
 *
 * @example
 * const p7 = buildCertsOnly([issuedDer]);
 * // base64 of p7 is the body of `application/pkcs7-mime; smime-type=certs-only`
 */
export function buildCertsOnly(certificatesDer: readonly Uint8Array[]): Buffer {
  const signedData = sequence(VERSION_1, NO_DIGEST_ALGORITHMS, ENCAP_CONTENT_INFO_DATA, contextTag(0, ...certificatesDer), NO_SIGNER_INFOS);
  return sequence(SIGNED_DATA_OID, contextTag(0, signedData));
}

/**
 * Reads the certificates out of a certs-only SignedData (RFC 5652 §5.1):
 *
 *   ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT SignedData }
 *   SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo,
 *                             [0] IMPLICIT certificates OPTIONAL, [1] crls OPTIONAL, signerInfos SET }
 *
 * Walked as DER (the RA reads one per forwarded request, and pkijs took
 * ~2.5 ms of CPU for it in `npm run bench`); BER, such as indefinite
 * lengths some CMS encoders emit, goes to pkijs.
 */
export function parseCertsOnly(data: Uint8Array): Buffer[] {
  const der = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  try {
    return certificatesOfDer(der);
  } catch (derError) {
    try {
      return certificatesWithPkijs(der);
    } catch {
      throw derError; // the DER reader's reason says more than asn1js's
    }
  }
}

function certificatesOfDer(der: Buffer): Buffer[] {
  const contentInfo = readTlv(der, 0);
  if (contentInfo.end !== der.length) throw new Error('malformed DER: trailing bytes');
  const [contentType, content] = expectTags(der, contentInfo, [TAG.oid, 0xa0]);
  if (!der.subarray(contentType!.offset, contentType!.end).equals(SIGNED_DATA_OID)) throw new DerError('content type is not SignedData');
  const [signedData] = expectTags(der, content!, [TAG.sequence]);
  const fields = children(der, signedData);
  if (fields[0]?.tag !== TAG.integer || fields[1]?.tag !== TAG.set || fields[2]?.tag !== TAG.sequence) throw new DerError('not a SignedData');
  const certificates = fields.find((field) => field.tag === 0xa0);
  if (!certificates) return [];
  return children(der, certificates)
    .filter((certificate) => certificate.tag === TAG.sequence)
    .map((certificate) => Buffer.from(der.subarray(certificate.offset, certificate.end)));
}

/**
 * BER (CMS allows it, RFC 5652 §1): the certificates as the sender encoded
 * them, taken from asn1js's parse without re-encoding, so each still has to
 * pass the strict certificate reader (pki/certificate-view.ts) on its own.
 */
function certificatesWithPkijs(der: Buffer): Buffer[] {
  const contentInfo = pkijs.ContentInfo.fromBER(bytes(der));
  if (contentInfo.contentType !== ID_SIGNED_DATA) throw new Error(`not SignedData: ${contentInfo.contentType}`);
  const signedData = contentInfo.content as asn1js.Sequence;
  new pkijs.SignedData({ schema: signedData }); // throws on a SignedData of the wrong shape
  const certificates = signedData.valueBlock.value.find((field) => field.idBlock.tagClass === 3 && field.idBlock.tagNumber === 0) as
    asn1js.Constructed | undefined;
  return (certificates?.valueBlock.value ?? [])
    .filter((certificate) => certificate instanceof asn1js.Sequence)
    .map((certificate) => Buffer.from(certificate.valueBeforeDecodeView));
}
