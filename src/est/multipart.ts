import { randomBytes } from 'node:crypto';
import { encodeBase64Body, type Base64Framing } from '../pki/der-body.js';

/** One body part of a multipart answer: its Content-Type and DER payload, sent as base64. */
export interface Base64Part {
  readonly contentType: string;
  readonly der: Uint8Array;
}

/**
 * A `multipart/mixed` body (RFC 2046 §5.1.1) of base64 parts, each with its
 * Content-Type and `Content-Transfer-Encoding: base64` (RFC 7030 §4.4.2),
 * framed like every base64 answer (README "Base64 framing": 64-column lines
 * for OpenSSL-based clients). The boundary is random and contains `-`,
 * which the base64 alphabet has not, so no part can contain a delimiter
 * line (RFC 2046 §5.1.1 requires it never occurs in the parts).
 */
export function multipartMixed(parts: readonly Base64Part[], framing: Base64Framing): { contentType: string; body: Buffer } {
  const boundary = `est-ra-${randomBytes(12).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${part.contentType}\r\nContent-Transfer-Encoding: base64\r\n\r\n`, 'latin1'));
    // The CRLF encodeBase64Body ends with is the one that belongs to the next delimiter.
    chunks.push(encodeBase64Body(part.der, framing));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  return { contentType: `multipart/mixed; boundary=${boundary}`, body: Buffer.concat(chunks) };
}
