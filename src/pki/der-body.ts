import { EstError } from '../errors.js';
import { readWhole } from './der.js';

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/;
const BASE64_TEXT = /^[A-Za-z0-9+/=\s]*$/;
const WHITESPACE = /\s+/g;
/** Padding optional (some embedded encoders drop it); a lone trailing character is never valid. */
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/**
 * Turns an EST request body into DER, whichever way the client wrapped it:
 * base64 with any line breaks or none (RFC 7030 §4.2.1; RFC 8951 says to
 * ignore Content-Transfer-Encoding, so the body itself decides), a PEM block
 * (DigiCert's curl examples, even with its line breaks turned into spaces),
 * or raw DER.
 */
export function decodeDerBody(body: Buffer): Buffer {
  if (body.length === 0) throw EstError.badRequest('EST_BODY_MALFORMED', 'request body is empty');
  // Raw DER: a SEQUENCE with a long-form length (base64 text never has a byte
  // >= 0x80), or one short-form SEQUENCE that spans the whole body exactly
  // (an Ed25519 CSR with an empty subject is under 128 bytes of content).
  if (body[0] === 0x30 && body.length > 1 && (body[1]! >= 0x80 || isWholeSequence(body))) return body;
  const text = body.toString('latin1');
  const pem = PEM_BLOCK.exec(text);
  if (pem) return decodeBase64(pem[2]!, `PEM ${pem[1]} block is not valid base64`);
  if (text.includes('-----BEGIN')) throw EstError.badRequest('EST_BODY_MALFORMED', 'PEM block has no matching END line');
  if (!BASE64_TEXT.test(text)) throw EstError.badRequest('EST_BODY_MALFORMED');
  return decodeBase64(text, 'request body is not valid base64 (truncated?)');
}

function isWholeSequence(body: Buffer): boolean {
  try {
    return readWhole(body).tag === 0x30;
  } catch {
    return false;
  }
}

function decodeBase64(text: string, reason: string): Buffer {
  const compact = text.replace(WHITESPACE, '');
  // Node's decoder silently drops what it cannot read; a truncated or
  // corrupted body must be refused, not half-decoded.
  if (compact.length === 0 || !STRICT_BASE64.test(compact)) throw EstError.badRequest('EST_BODY_MALFORMED', reason);
  return Buffer.from(compact, 'base64');
}

/**
 * How a base64 body is laid out. No one layout is read by every client
 * (measured, README "Base64 framing"):
 * - `wrapped`: 64-character lines, each ended by CRLF (RFC 2045 §6.8 style).
 *   OpenSSL's base64 BIO (libest, OpenSSL-based firmware, `openssl base64 -d`)
 *   drops a first line longer than 1024 characters, so past 765 DER bytes
 *   it reads only this.
 * - `single_line`: all of it on one line, then CRLF. strongSwan pki 5.9.8
 *   refuses whitespace inside the data and reads only this.
 */
export type Base64Framing = 'wrapped' | 'single_line';

const LINE = /.{1,64}/g;

export function encodeBase64Body(der: Uint8Array, framing: Base64Framing): Buffer {
  const text = Buffer.from(der).toString('base64');
  if (framing === 'single_line') return Buffer.from(`${text}\r\n`, 'latin1');
  return Buffer.from(`${(text.match(LINE) ?? []).join('\r\n')}\r\n`, 'latin1');
}
