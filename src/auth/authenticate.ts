import { EstError } from '../errors.js';
import { bytes, x509 } from '../pki/x509.js';
import { certificateExtension } from '../pki/der.js';
import type { AuthenticationPolicy, Profile } from '../policy/profile.js';
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
  /** This TLS connection's channel binding (RFC 5929 tls-unique on TLS 1.2, RFC 9266 tls-exporter on TLS 1.3). */
  readonly channelBinding?: ChannelBinding;
}

export interface ChannelBinding {
  readonly type: 'tls-unique' | 'tls-exporter';
  readonly value: Buffer;
}

/**
 * The realm in WWW-Authenticate. Clients such as libest and TrustEdge first
 * ask without credentials and retry on this challenge (RFC 7030 §3.2.3).
 */
export const BASIC_CHALLENGE = { 'WWW-Authenticate': 'Basic realm="est-ra"' } as const;

/**
 * /simpleenroll, as the profile's enroll_authentication says: a passcode of
 * its authentication policy by HTTP Basic (RFC 7030 §3.2.3), a TLS client
 * certificate from the policy's authentication CAs or pinned certificates
 * (RFC 7030 §3.3.2, a bootstrap or manufacturer certificate), or both. A
 * wrong passcode and a wrong username get the same answer, so a client
 * learns nothing about which part was wrong.
 */
export async function authenticateEnroll(store: Store, profile: Profile, credentials: ClientCredentials, now: Date): Promise<Principal> {
  const { methods, requireAll } = profile.enrollAuthentication;
  const byCertificate = methods.includes('client_certificate');
  const byPasscode = methods.includes('passcode');
  const certificate =
    byCertificate && credentials.clientCertificate
      ? await checkBootstrapCertificate(profile.authenticationPolicy, credentials.clientCertificate, now)
      : undefined;
  if (certificate?.ok && !(requireAll && byPasscode)) return certificate.principal;
  if (byCertificate && (requireAll || !byPasscode)) {
    if (!certificate) throw EstError.forbidden('EST_CLIENT_CERT_REQUIRED', 'simpleenroll requires a TLS client certificate of the authentication policy');
    if (!certificate.ok) throw EstError.forbidden('EST_CLIENT_CERT_REJECTED', `TLS client certificate not accepted: ${certificate.reason}`);
  }
  const passcode = await authenticatePasscode(store, profile, credentials, now);
  return certificate?.ok && certificate.principal.kind === 'certificate' ? { ...passcode, certificate: certificate.principal } : passcode;
}

async function authenticatePasscode(store: Store, profile: Profile, credentials: ClientCredentials, now: Date): Promise<Principal & { kind: 'passcode' }> {
  const basic = parseBasicAuthorization(credentials.authorization);
  if (basic === undefined) throw new EstError('EST_AUTH_REQUIRED', { headers: BASIC_CHALLENGE });
  if (basic === null) throw new EstError('EST_AUTH_FAILED', { reason: 'malformed Authorization header', headers: BASIC_CHALLENGE });
  const policy = profile.authenticationPolicy;
  const check = await verifyPasscode(store, policy.name, { username: basic.username, passcode: basic.password }, policy.enableUsernameForPasscode, now);
  if (!check.ok) throw new EstError('EST_AUTH_FAILED', { reason: `authentication failed: ${check.reason}`, headers: BASIC_CHALLENGE });
  return { kind: 'passcode', passcodeId: check.record.id, policy: policy.name, ...(basic.username ? { username: basic.username } : {}) };
}

const ID_KP_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ID_CE_EXT_KEY_USAGE = '2.5.29.37';

/**
 * A bootstrap certificate: pinned as it is, or issued by one of the policy's
 * authentication CAs; valid now; with clientAuth among its extended key
 * usages when it has any (RFC 5280 §4.2.1.12).
 */
async function checkBootstrapCertificate(
  policy: AuthenticationPolicy,
  der: Buffer,
  now: Date,
): Promise<{ ok: true; principal: Principal } | { ok: false; reason: string }> {
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(bytes(der));
  } catch {
    return { ok: false, reason: 'it cannot be parsed' };
  }
  const ekuDer = certificateExtension(der, ID_CE_EXT_KEY_USAGE);
  const eku = ekuDer && new x509.ExtendedKeyUsageExtension(bytes(ekuDer));
  if (eku && !eku.usages.includes(ID_KP_CLIENT_AUTH)) return { ok: false, reason: 'it has no clientAuth extended key usage' };
  const pinned = policy.pinnedCertificates.some((pin) => Buffer.from(pin.rawData).equals(der));
  let note: string | undefined;
  if (pinned) {
    if (now < certificate.notBefore || now > certificate.notAfter) {
      return { ok: false, reason: `pinned certificate outside its validity (${certificate.notAfter.toISOString()})` };
    }
  } else {
    const checks = await Promise.all(policy.authenticationCas.map((ca) => checkIssuedBy(certificate, ca, now)));
    const issuer = policy.authenticationCas[checks.findIndex((check) => check.ok)];
    if (!issuer) {
      const named = checks.find((check) => !check.ok && !check.reason.startsWith('certificate was not issued'));
      return { ok: false, reason: named && !named.ok ? named.reason : 'it was not issued by an authentication CA of the policy and is not pinned' };
    }
    const revocation = await revocationVerdict(policy, certificate, issuer);
    if (!revocation.ok) return revocation;
    note = revocation.note;
  }
  return {
    ok: true,
    principal: { kind: 'certificate', subject: certificate.subject, serial: certificate.serialNumber, issuer: certificate.issuer, revocation: note },
  };
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
  const cas = await profile.upstream.caCertificates();
  const checks = await Promise.all(cas.map((ca) => checkIssuedBy(certificate, ca, now, { validityDecidedByCaller: true })));
  const issuer = cas[checks.findIndex((check) => check.ok)];
  if (!issuer) {
    const failed = checks.find((check) => !check.ok) ?? { reason: "certificate was not issued by this profile's CA" };
    throw EstError.forbidden('EST_CLIENT_CERT_REJECTED', `TLS client certificate not accepted: ${failed.reason}`);
  }
  const revocation = await revocationVerdict(profile.authenticationPolicy, certificate, issuer, profile.renewRevokedCert);
  if (!revocation.ok) throw EstError.forbidden('EST_CLIENT_CERT_REJECTED', `TLS client certificate not accepted: ${revocation.reason}`);
  return {
    principal: { kind: 'certificate', subject: certificate.subject, serial: certificate.serialNumber, issuer: certificate.issuer, revocation: revocation.note },
    certificate,
  };
}

/**
 * The policy's revocation check as a decision, with a note for the request
 * record: revoked is refused (unless `allowRevoked`, renew_revoked_cert);
 * unknown is refused in hard_fail and allowed, logged and counted in soft_fail.
 */
async function revocationVerdict(
  policy: AuthenticationPolicy,
  certificate: x509.X509Certificate,
  issuer: x509.X509Certificate,
  allowRevoked = false,
): Promise<{ ok: true; note?: string } | { ok: false; reason: string }> {
  const checker = policy.revocation;
  if (!checker) return { ok: true };
  const result = await checker.check(certificate, issuer);
  switch (result.status) {
    case 'good':
      return { ok: true, note: `good (${result.source})` };
    case 'revoked':
      return allowRevoked
        ? { ok: true, note: `revoked (${result.source}); renewal of revoked certificates allowed` }
        : { ok: false, reason: `certificate revoked (${result.source})` };
    case 'unknown':
      if (checker.mode === 'hard_fail') return { ok: false, reason: `revocation status unknown: ${result.reason}` };
      policy.onRevocationUnknown?.(result.reason);
      return { ok: true, note: `unknown, allowed by soft_fail: ${result.reason}` };
  }
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
