import type { ServerResponse } from 'node:http';
import { EstError } from '../errors.js';
import { MEDIA_TYPE } from './media-types.js';

/**
 * Writes a DER payload the way both libest and strongSwan parse it: base64 on
 * one line followed by CRLF, with Content-Length (never chunked) and header
 * names in exact case (RFC 7030 §4.1.3, §4.2.3; ../shared/INTEROP.md).
 */
export function sendBase64(res: ServerResponse, contentType: string, der: Uint8Array): void {
  sendBody(res, 200, contentType, base64Body(der));
}

/** Pre-encodes a DER payload once, for answers that do not change (e.g. /cacerts). */
export function base64Body(der: Uint8Array): Buffer {
  return Buffer.from(`${Buffer.from(der).toString('base64')}\r\n`, 'latin1');
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

export function sendError(res: ServerResponse, error: EstError): void {
  const headers: Record<string, string> = { ...error.headers };
  if (error.retryAfter !== undefined) headers['Retry-After'] = String(Math.ceil(error.retryAfter));
  if (error.status === 401) {
    // libest retries with credentials only after an empty-bodied challenge (INTEROP.md).
    res.writeHead(401, { ...headers, 'Content-Length': '0' });
    res.end();
    return;
  }
  sendBody(res, error.status, MEDIA_TYPE.text, Buffer.from(`${error.status} ${error.reason}\n`, 'utf8'), headers);
}
