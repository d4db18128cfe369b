/**
 * What the test upstream EST server and its test helper agree on: modes,
 * operations, the start line and the stats. Kept apart from est-server.ts
 * because importing that file starts a server.
 */

/**
 * How the upstream answers simpleenroll/simplereenroll (and, for libest and
 * csrattrs-down, /csrattrs). /cacerts always answers normally, so a test can
 * break enrollment while est-ra can still fetch the CA chain.
 */
export const UPSTREAM_MODES = [
  /** Issue a certificate for the CSR's key under the issuing CA. */
  'normal',
  /** 202 + Retry-After: 1 until POST /control/approve, then issue (RFC 7030 §4.2.3: the client re-sends). */
  'pending',
  /**
   * 202 with `Retry-After: 99999999999999999999`: delay-seconds past any
   * date a JavaScript Date holds (npm run fuzz found est-ra answering 500).
   */
  'pending-far',
  /** 401, as if the RA's credentials were wrong. */
  'unauthorized',
  /** 403, as if the RA may not ask for this certificate. */
  'forbidden',
  /** 500 with a text body. */
  'error500',
  /** 200 with a base64 body that is not PKCS#7. */
  'garbage',
  /** 200 with a valid certs-only PKCS#7 whose certificate holds another key than the CSR's. */
  'wrong-key',
  /** 200 with a certificate for the CSR's key signed by a throwaway CA, not the issuing CA. */
  'other-ca',
  /** Read the request and never answer. */
  'hang',
  /** Read the request and destroy the connection without answering. */
  'reset',
  /**
   * What cisco/libest's estserver does (OpenSSL's base64 BIO, its PoP check):
   * 400 for a CSR body whose first line is longer than 1024 characters (one
   * line of >= 1024 base64 characters; wrapped it is read); 401 for a CSR with
   * a challengePassword when the client certificate lacks id-kp-cmcRA (the
   * tls-unique check an RA cannot pass); /csrattrs answered with a trailing
   * NUL byte counted in Content-Length. Otherwise issues as normal.
   */
  'libest',
  /** /csrattrs answers 500; enrollment as normal. */
  'csrattrs-down',
  /**
   * Issue at once, answer 100-400 ms later: a client that dies in between
   * (est-ra killed) leaves a certificate at the upstream that it never got.
   */
  'slow',
] as const;

export type UpstreamMode = (typeof UPSTREAM_MODES)[number];

export function isUpstreamMode(value: string): value is UpstreamMode {
  return (UPSTREAM_MODES as readonly string[]).includes(value);
}

export const EST_OPERATIONS = ['cacerts', 'simpleenroll', 'simplereenroll', 'csrattrs', 'fullcmc'] as const;

export type EstOperation = (typeof EST_OPERATIONS)[number];

/** The one JSON line the server prints on stdout once it listens. */
export interface UpstreamStartLine {
  readonly url: string;
  readonly control: string;
  readonly rootCa: string;
  readonly issuingCa: string;
}

/** GET /control/stats. Never echoes credentials: only whether a client certificate was seen and whose. */
export interface UpstreamStats {
  readonly mode: UpstreamMode;
  readonly approved: boolean;
  /** 'secureConnection' events: one per TLS connection, so keep-alive reuse shows as fewer handshakes than requests. */
  readonly tlsHandshakes: number;
  /** Connections refused during the handshake ('tlsClientError'), e.g. a client without an RA certificate. */
  readonly tlsClientErrors: number;
  /** Requests per EST operation; 'other' counts paths that were answered 404. */
  readonly requests: Record<EstOperation | 'other', number>;
  /** Enroll requests answered 200 with a certificate (including wrong-key and other-ca ones). */
  readonly issued: number;
  /** Certificates issued per CSR (SHA-256 of its DER, hex): more than one means a request was issued twice. */
  readonly issuedPerCsr: Record<string, number>;
  readonly lastHadClientCert: boolean;
  /** The last client certificate's subject, RDNs joined by ', ', e.g. 'CN=est-ra RA'. */
  readonly lastClientSubject: string | null;
  /** The last client certificate's serial number, hex as Node prints it. */
  readonly lastClientSerial: string | null;
  readonly lastPath: string | null;
}
