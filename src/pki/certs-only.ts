import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { bytes } from './x509.js';
import { contextTag, objectIdentifier, sequence, set, smallInteger } from './der.js';

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

/** Reads the DER certificates out of a certs-only SignedData (RFC 5652 §5.1), with pkijs. */
export function parseCertsOnly(der: Uint8Array): Buffer[] {
  const contentInfo = pkijs.ContentInfo.fromBER(bytes(der));
  if (contentInfo.contentType !== ID_SIGNED_DATA) throw new Error(`not SignedData: ${contentInfo.contentType}`);
  const signedData = new pkijs.SignedData({ schema: contentInfo.content as asn1js.Sequence });
  return (signedData.certificates ?? [])
    .filter((c): c is pkijs.Certificate => c instanceof pkijs.Certificate)
    .map((c) => Buffer.from(c.toSchema().toBER(false)));
}
