import type { ServerResponse } from 'node:http';
import { EstError } from '../errors.js';
import { encodeBase64Body, type Base64Framing } from '../pki/der-body.js';
import { MEDIA_TYPE } from './media-types.js';

/** A profile's `base64_framing`: `auto` picks per request (framingFor). */
export type Base64FramingSetting = Base64Framing | 'auto';

/**
 * The framing an answer gets. `auto`: one line for a request without a
 * User-Agent header — strongSwan pki writes its own HTTP request with Host,
 * Authorization, Content-Type and Content-Length only (src/pki/est/est_tls.c)
 * and decodes the body with chunk_from_base64, which fails on whitespace
 * inside the data (measured: a wrapped /cacerts is unreadable to it);
 * Bouncy Castle sends no User-Agent either and reads both. Every other
 * request (libest sends `User-Agent: libest ...`, curl, browsers) gets
 * 64-column lines, which OpenSSL's base64 BIO reads at any length.
 */
export function framingFor(setting: Base64FramingSetting, userAgent: string | undefined): Base64Framing {
  if (setting !== 'auto') return setting;
  return userAgent === undefined || userAgent.trim() === '' ? 'single_line' : 'wrapped';
}

/**
 * Writes a DER payload as base64 in the given framing, with
 * `Content-Transfer-Encoding: base64` (RFC 7030 §4 as published; Bouncy
 * Castle decodes only when it is present, RFC 8951 clients ignore it),
 * Content-Length (never chunked) and header names in exact case
 * (RFC 7030 §4.1.3, §4.2.3; README "Base64 framing").
 */
export function sendBase64(res: ServerResponse, contentType: string, der: Uint8Array, framing: Base64Framing): void {
  sendBody(res, 200, contentType, encodeBase64Body(der, framing), BASE64_HEADERS);
}

const BASE64_HEADERS = { 'Content-Transfer-Encoding': 'base64' } as const;
const encodedOnce = new WeakMap<Uint8Array, Partial<Record<Base64Framing, Buffer>>>();

/**
 * sendBase64 for payloads that do not change between requests (/cacerts,
 * the profile's own /csrattrs): each framing is encoded once per payload
 * object, not per request.
 */
export function sendBase64Reused(res: ServerResponse, contentType: string, der: Uint8Array, framing: Base64Framing): void {
  let bodies = encodedOnce.get(der);
  if (!bodies) encodedOnce.set(der, (bodies = {}));
  const body = (bodies[framing] ??= encodeBase64Body(der, framing));
  sendBody(res, 200, contentType, body, BASE64_HEADERS);
}

export function sendBody(res: ServerResponse, status: number, contentType: string, body: Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': String(body.length), ...headers });
  res.end(body);
}

export function sendNoContent(res: ServerResponse): void {
  res.writeHead(204);
  res.end();
}

/** Errors from body-parser (express.raw) that are the client's doing. */
interface BodyParserError {
  type: string;
  status?: number;
}

/**
 * The one place an error becomes HTTP. An EstError is answered with its
 * status and its safe one-line reason; anything else is a fault of est-ra,
 * answered `500 internal server error` (its cause goes to the log only).
 */
export function toEstError(err: unknown): EstError {
  if (err instanceof EstError) return err;
  const type = (err as Partial<BodyParserError> | null)?.type;
  switch (type) {
    case 'entity.too.large':
      return new EstError('EST_BODY_TOO_LARGE', { cause: err });
    case 'request.aborted':
    case 'request.size.invalid':
      return new EstError('EST_BODY_MALFORMED', { reason: 'request body incomplete', cause: err });
    case 'encoding.unsupported':
      return new EstError('EST_CONTENT_TYPE', { reason: 'Content-Encoding not supported', cause: err });
    default:
      return new EstError('EST_INTERNAL', { cause: err });
  }
}

/** The realm clients see in the challenge. */
const BASIC_CHALLENGE = 'Basic realm="est-ra"';

export function sendError(res: ServerResponse, error: EstError): void {
  const headers: Record<string, string> = { ...error.headers };
  if (error.retryAfter !== undefined) headers['Retry-After'] = String(Math.ceil(error.retryAfter));
  if (error.status === 401) {
    // Every 401 is a Basic challenge (RFC 7030 §3.2.3): clients such as libest
    // and TrustEdge first ask without credentials and retry only after an
    // empty-bodied challenge.
    res.writeHead(401, { 'WWW-Authenticate': BASIC_CHALLENGE, ...headers, 'Content-Length': '0' });
    res.end();
    return;
  }
  sendBody(res, error.status, MEDIA_TYPE.text, Buffer.from(`${error.status} ${error.reason}\n`, 'utf8'), headers);
}
