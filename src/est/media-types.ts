/**
 * Media types exactly as RFC 7030 §4 writes them. libest matches these
 * values as prefixes, spacing included, so they are written once here.
 */
export const MEDIA_TYPE = {
  /** /cacerts (RFC 7030 §4.1.3). */
  cacerts: 'application/pkcs7-mime',
  /** /simpleenroll, /simplereenroll (RFC 7030 §4.2.3). */
  certsOnly: 'application/pkcs7-mime; smime-type=certs-only',
  /** /serverkeygen's key part, unencrypted: DER PrivateKeyInfo (RFC 7030 §4.4.2). */
  pkcs8: 'application/pkcs8',
  /** /serverkeygen's key part, encrypted: CMS EnvelopedData (RFC 7030 §4.4.2). */
  serverGeneratedKey: 'application/pkcs7-mime; smime-type=server-generated-key',
  /** /csrattrs (RFC 7030 §4.5.2). */
  csrattrs: 'application/csrattrs',
  /** /fullcmc request and answer (RFC 7030 §4.3.1, §4.3.2). */
  cmcRequest: 'application/pkcs7-mime; smime-type=CMC-request',
  cmcResponse: 'application/pkcs7-mime; smime-type=CMC-response',
  /** Errors: one line of text. */
  text: 'text/plain; charset=utf-8',
} as const;

/**
 * Content types under which real clients send a CSR: `application/pkcs10`
 * (RFC 7030 §4.2.1, libest, strongSwan), `text/plain` (DigiCert's documented
 * curl), `application/x-www-form-urlencoded` (what `curl --data` sends when
 * the admin forgets -H), `application/octet-stream` and none at all.
 * Anything else is a 415.
 */
export const CSR_CONTENT_TYPES: ReadonlySet<string> = new Set([
  'application/pkcs10',
  'application/x-pkcs10',
  'text/plain',
  'application/octet-stream',
  'application/x-www-form-urlencoded',
]);

/**
 * A Content-Type that says CMC-request (RFC 7030 §4.3.1), however the client
 * spells it: any case, spacing, a quoted parameter value, other parameters.
 */
export function isCmcRequest(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const [mediaType, ...parameters] = contentType.split(';');
  if (mediaType!.trim().toLowerCase() !== 'application/pkcs7-mime') return false;
  return parameters.some((parameter) => {
    const [name, ...value] = parameter.split('=');
    return (
      name!.trim().toLowerCase() === 'smime-type' &&
      value
        .join('=')
        .trim()
        .replace(/^"(.*)"$/, '$1')
        .toLowerCase() === 'cmc-request'
    );
  });
}
