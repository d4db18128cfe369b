/**
 * One error type for every refusal est-ra makes. A module that says "no"
 * throws an EstError carrying the HTTP status and a one-line reason that is
 * safe to show the client; the private cause stays in the logs. Only
 * `est/respond.ts` turns it into an HTTP response, so nothing below the HTTP
 * layer knows about express.
 */

/** Stable codes, one per kind of refusal. docs/errors.md has one line for each. */
export const ERROR_CATALOGUE = {
  EST_PENDING: { status: 202, reason: 'request accepted; certificate not ready yet, retry later' },
  EST_BODY_MALFORMED: { status: 400, reason: 'request body is not base64, PEM or DER' },
  EST_CSR_MALFORMED: { status: 400, reason: 'malformed PKCS#10 request' },
  EST_CSR_SIGNATURE: { status: 400, reason: 'CSR signature does not verify (no proof of possession)' },
  EST_AUTH_REQUIRED: { status: 401, reason: 'authentication required' },
  EST_AUTH_FAILED: { status: 401, reason: 'authentication failed' },
  EST_CLIENT_CERT_REQUIRED: { status: 403, reason: 'a TLS client certificate is required' },
  EST_CLIENT_CERT_REJECTED: { status: 403, reason: 'TLS client certificate not accepted' },
  EST_KEY_TYPE: { status: 403, reason: 'key type not allowed by profile' },
  EST_RENEWAL_REFUSED: { status: 403, reason: 'renewal not allowed by profile' },
  EST_OUTSIDE_HOURS: { status: 403, reason: "outside the profile's operational hours or dates" },
  EST_CHANNEL_BINDING: { status: 403, reason: "the CSR's challengePassword does not carry this TLS connection's channel binding" },
  EST_NAME_NOT_ALLOWED: { status: 403, reason: 'the CSR asks for a name the profile does not allow' },
  EST_EXTENSION_NOT_ALLOWED: { status: 403, reason: 'the CSR asks for an extension the profile does not issue' },
  EST_SIGNATURE_ALGORITHM: { status: 403, reason: 'CSR signature algorithm not allowed by profile' },
  EST_RENEWAL_IDENTITY: { status: 403, reason: 'a renewal must keep the identity of the certificate it renews' },
  EST_ADDRESS_NOT_ALLOWED: { status: 403, reason: 'client address not allowed by profile' },
  EST_NOT_FOUND: { status: 404, reason: 'not found' },
  EST_UNKNOWN_LABEL: { status: 404, reason: 'unknown EST label' },
  EST_METHOD: { status: 405, reason: 'method not allowed' },
  EST_BODY_TOO_LARGE: { status: 413, reason: 'request body too large' },
  EST_TOO_MANY_REFUSALS: { status: 429, reason: 'too many refused requests from this address; retry later' },
  EST_CONTENT_TYPE: { status: 415, reason: 'Content-Type must be application/pkcs10' },
  EST_INTERNAL: { status: 500, reason: 'internal server error' },
  EST_NOT_IMPLEMENTED: { status: 501, reason: 'operation not supported by this profile' },
  EST_UPSTREAM_AUTH: { status: 502, reason: "the upstream CA rejected est-ra's own credentials" },
  EST_UPSTREAM_POP: { status: 502, reason: "the upstream CA refused the CSR's proof-of-possession (tls-unique)" },
  EST_UPSTREAM_REFUSED: { status: 502, reason: 'the upstream CA refused the request' },
  EST_UPSTREAM_INVALID: { status: 502, reason: 'the upstream CA answered with something est-ra cannot accept' },
  EST_UPSTREAM_UNAVAILABLE: { status: 503, reason: 'the upstream CA is unreachable' },
  EST_STORE_UNAVAILABLE: { status: 503, reason: "est-ra's database is unavailable; retry later" },
  EST_APPROVAL_REJECTED: { status: 403, reason: 'request rejected by an administrator' },
  EST_APPROVAL_EXPIRED: { status: 403, reason: 'approval expired' },
  EST_KEY_GENERATION: { status: 403, reason: "the profile's key_generation_option does not allow this operation" },
  EST_KEY_ENCRYPTION: { status: 400, reason: 'the server-generated key cannot be encrypted as the CSR asks' },
  EST_KEY_GENERATION_BUSY: { status: 503, reason: 'too many server-side key generations at once; retry later' },
  EST_UPSTREAM_DEFERRED: { status: 502, reason: 'the upstream CA did not issue at once; a server-generated key is not kept to wait' },
} as const satisfies Record<string, { status: number; reason: string }>;

export type EstErrorCode = keyof typeof ERROR_CATALOGUE;

export interface EstErrorOptions {
  /** Overrides the catalogue's generic reason with a more precise safe one. */
  reason?: string;
  /** Seconds for a Retry-After header (202, 503). */
  retryAfter?: number;
  /** Extra response headers, e.g. `Allow` for 405. */
  headers?: Record<string, string>;
  /** The private cause: logged, never sent. */
  cause?: unknown;
}

export class EstError extends Error {
  readonly status: number;
  readonly code: EstErrorCode;
  /** One line, safe to send to the client. */
  readonly reason: string;
  readonly retryAfter?: number;
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: EstErrorCode, options: EstErrorOptions = {}) {
    const entry = ERROR_CATALOGUE[code];
    const reason = oneLine(options.reason ?? entry.reason);
    super(reason, { cause: options.cause });
    this.name = 'EstError';
    this.code = code;
    this.status = entry.status;
    this.reason = reason;
    this.retryAfter = options.retryAfter;
    this.headers = options.headers ?? {};
  }

  /** 400: the client sent something that cannot be understood. */
  static badRequest(code: 'EST_BODY_MALFORMED' | 'EST_CSR_MALFORMED' | 'EST_CSR_SIGNATURE', reason?: string, cause?: unknown): EstError {
    return new EstError(code, { reason, cause });
  }

  /**
   * 202: accepted and durable, but no certificate yet (RFC 7030 §4.2.3): the
   * client retries the same request after `retryAfter` seconds.
   */
  static pending(retryAfter: number, reason?: string, cause?: unknown): EstError {
    return new EstError('EST_PENDING', { retryAfter: Math.max(1, Math.ceil(retryAfter)), reason, cause });
  }

  /** 403: understood, authenticated, and refused by policy. */
  static forbidden(
    code: 'EST_CLIENT_CERT_REQUIRED' | 'EST_CLIENT_CERT_REJECTED' | 'EST_KEY_TYPE' | 'EST_ADDRESS_NOT_ALLOWED',
    reason?: string,
    cause?: unknown,
  ): EstError {
    return new EstError(code, { reason, cause });
  }
}

/** Reasons go into a one-line text/plain body and a log field: no CR/LF, bounded length. */
function oneLine(text: string): string {
  const flat = text.replace(/[\r\n]+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 197)}...` : flat;
}
