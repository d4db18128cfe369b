import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { bytes } from './x509.js';

const ID_DATA = '1.2.840.113549.1.7.1';
const ID_SIGNED_DATA = '1.2.840.113549.1.7.2';

/**
 * Builds a certs-only CMS SignedData ("degenerate PKCS#7": no content, no
 * signers, just certificates) from DER certificates, as EST answers /cacerts
 * and /simpleenroll (RFC 7030 §4.1.3, §4.2.3; RFC 5652 §5).
 *
 * @example
 * const p7 = buildCertsOnly([issuedDer]);
 * // base64 of p7 is the body of `application/pkcs7-mime; smime-type=certs-only`
 */
export function buildCertsOnly(certificatesDer: readonly Uint8Array[]): Buffer {
  const signedData = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: ID_DATA }),
    certificates: certificatesDer.map((der) => pkijs.Certificate.fromBER(bytes(der))),
  });
  const contentInfo = new pkijs.ContentInfo({ contentType: ID_SIGNED_DATA, content: signedData.toSchema(true) });
  return Buffer.from(contentInfo.toSchema().toBER(false));
}

/** Reads the DER certificates out of a certs-only SignedData (RFC 5652 §5.1). */
export function parseCertsOnly(der: Uint8Array): Buffer[] {
  const contentInfo = pkijs.ContentInfo.fromBER(bytes(der));
  if (contentInfo.contentType !== ID_SIGNED_DATA) throw new Error(`not SignedData: ${contentInfo.contentType}`);
  const signedData = new pkijs.SignedData({ schema: contentInfo.content as asn1js.Sequence });
  return (signedData.certificates ?? [])
    .filter((c): c is pkijs.Certificate => c instanceof pkijs.Certificate)
    .map((c) => Buffer.from(c.toSchema().toBER(false)));
}
