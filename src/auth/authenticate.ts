import { EstError } from '../errors.js';
import { bytes, x509 } from '../pki/x509.js';
import type { Profile } from '../policy/profile.js';
import type { Principal, Store } from '../store/types.js';
import { parseBasicAuthorization } from './basic.js';
import { checkIssuedBy } from './client-certificate.js';
import { verifyPasscode } from './passcode.js';

/** What the listener knows about the client, independent of HTTP framing. */
export interface ClientCredentials {
  /** The raw Authorization header value, if any. Never logged. */
  readonly authorization?: string;
  /** DER of the TLS client certificate, if the client sent one. */
  readonly clientCertificate?: Buffer;
}

/**
 * The realm in WWW-Authenticate. Clients such as libest and TrustEdge first
 * ask without credentials and retry on this challenge (RFC 7030 §3.2.3).
 */
export const BASIC_CHALLENGE = { 'WWW-Authenticate': 'Basic realm="est-ra"' } as const;

/**
 * /simpleenroll: HTTP Basic with a passcode of the profile's authentication
 * policy (RFC 7030 §3.2.3). A wrong passcode and a wrong username get the same
 * answer, so a client learns nothing about which part was wrong.
 */
export async function authenticateEnroll(store: Store, profile: Profile, credentials: ClientCredentials, now: Date): Promise<Principal> {
  const basic = parseBasicAuthorization(credentials.authorization);
  if (basic === undefined) throw new EstError('EST_AUTH_REQUIRED', { headers: BASIC_CHALLENGE });
  if (basic === null) throw new EstError('EST_AUTH_FAILED', { reason: 'malformed Authorization header', headers: BASIC_CHALLENGE });
  const policy = profile.authenticationPolicy;
  const check = await verifyPasscode(store, policy.name, { username: basic.username, passcode: basic.password }, policy.enableUsernameForPasscode, now);
  if (!check.ok) throw new EstError('EST_AUTH_FAILED', { reason: `authentication failed: ${check.reason}`, headers: BASIC_CHALLENGE });
  return { kind: 'passcode', passcodeId: check.record.id, policy: policy.name, ...(basic.username ? { username: basic.username } : {}) };
}

/**
 * /simplereenroll: the client presents the certificate it renews as its TLS
 * client certificate (RFC 7030 §4.2.2), and that certificate must have been
 * issued by the profile's CA.
 */
export async function authenticateReenroll(
  profile: Profile,
  credentials: ClientCredentials,
  now: Date,
): Promise<{ principal: Principal; certificate: x509.X509Certificate }> {
  if (!credentials.clientCertificate) {
    throw EstError.forbidden('EST_CLIENT_CERT_REQUIRED', 'simplereenroll requires the certificate being renewed as the TLS client certificate');
  }
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(bytes(credentials.clientCertificate));
  } catch (cause) {
    throw EstError.forbidden('EST_CLIENT_CERT_REJECTED', 'TLS client certificate cannot be parsed', cause);
  }
  const checks = await Promise.all(
    (await profile.upstream.caCertificates()).map((ca) => checkIssuedBy(certificate, ca, now, { validityDecidedByCaller: true })),
  );
  const failed = checks.find((check) => !check.ok) ?? { reason: "certificate was not issued by this profile's CA" };
  if (!checks.some((check) => check.ok)) throw EstError.forbidden('EST_CLIENT_CERT_REJECTED', `TLS client certificate not accepted: ${failed.reason}`);
  return {
    principal: { kind: 'certificate', subject: certificate.subject, serial: certificate.serialNumber, issuer: certificate.issuer },
    certificate,
  };
}

/** A short form for log lines: never contains a secret. */
export function describePrincipal(principal: Principal | undefined): string | undefined {
  switch (principal?.kind) {
    case 'passcode':
      return `passcode:${principal.passcodeId}${principal.username ? ` user:${principal.username}` : ''}`;
    case 'certificate':
      return `certificate:${principal.serial} ${principal.subject}`;
    default:
      return undefined;
  }
}
