import { EstError } from '../errors.js';
import { CertificateView, viewOf } from '../pki/certificate-view.js';
import { validatePath, type PathValidation } from '../pki/path-validation.js';
import type { AuthenticationPolicy, AuthenticationScope } from './authentication-policy.js';
import type { PasscodeRecord, Principal, Store } from '../store/types.js';
import { parseBasicAuthorization } from './basic.js';
import { UNKNOWN_PASSCODE, verifyPasscode } from './passcode.js';
import { readNames } from '../pki/names.js';

/** What the listener knows about the client, independent of HTTP framing. */
export interface ClientCredentials {
  /** The raw Authorization header value, if any. Never logged. */
  readonly authorization?: string;
  /** DER of the TLS client certificate, if the client sent one. */
  readonly clientCertificate?: Buffer;
  /** DER of the certificates the client sent after its own (intermediates), read on demand. */
  readonly clientChain?: () => readonly Buffer[];
  /** This TLS connection's channel binding (RFC 5929 tls-unique on TLS 1.2, RFC 9266 tls-exporter on TLS 1.3). */
  readonly channelBinding?: ChannelBinding;
}

export interface ChannelBinding {
  readonly type: 'tls-unique' | 'tls-exporter';
  readonly value: Buffer;
}

/**
 * /simpleenroll, as the profile's enroll_authentication says: a passcode of
 * its authentication policy by HTTP Basic (RFC 7030 §3.2.3), a TLS client
 * certificate from the policy's authentication CAs or pinned certificates
 * (RFC 7030 §3.3.2, a bootstrap or manufacturer certificate), or both. A
 * downstream RA's certificate (id-kp-cmcRA from one of the policy's
 * downstream_ra_cas, RFC 7030 §3.7) authenticates on its own. A wrong
 * passcode and a wrong username get the same answer, so a client learns
 * nothing about which part was wrong.
 */
export async function authenticateEnroll(
  store: Store,
  profile: AuthenticationScope,
  credentials: ClientCredentials,
  now: Date,
  /** How the passcode method authenticates: the Basic header, or for `est-ra simulate --passcode-id` a passcode named by id. */
  authenticatePasscode: PasscodeAuthenticator = passcodeFromBasic,
): Promise<Principal> {
  const policy = profile.authenticationPolicy;
  const { methods, requireAll } = profile.enrollAuthentication;
  const byCertificate = methods.includes('client_certificate');
  const byPasscode = methods.includes('passcode');
  const client = parseClientCertificate(credentials);
  const ra = client && !('error' in client) ? await checkDownstreamRa(policy, client, now) : undefined;
  if (ra) {
    if (!ra.ok) throw EstError.forbidden('EST_CLIENT_CERT_REJECTED', ra.reason);
    return ra.principal;
  }
  const certificate =
    byCertificate && client
      ? 'error' in client
        ? { ok: false as const, reason: client.error }
        : await checkBootstrapCertificate(policy, client, now)
      : undefined;
  if (certificate?.ok && !(requireAll && byPasscode)) return certificate.principal;
  if (byCertificate && (requireAll || !byPasscode)) {
    if (!certificate) throw EstError.forbidden('EST_CLIENT_CERT_REQUIRED', 'simpleenroll requires a TLS client certificate of the authentication policy');
    if (!certificate.ok) throw EstError.forbidden('EST_CLIENT_CERT_REJECTED', `TLS client certificate not accepted: ${certificate.reason}`);
  }
  const passcode = await authenticatePasscode(store, profile, credentials);
  return certificate?.ok && certificate.principal.kind === 'certificate' ? { ...passcode, certificate: certificate.principal } : passcode;
}

type PasscodePrincipal = Principal & { kind: 'passcode' };
export type PasscodeAuthenticator = (store: Store, profile: AuthenticationScope, credentials: ClientCredentials) => Promise<PasscodePrincipal>;

/** The passcode of HTTP Basic (RFC 7030 §3.2.3), checked against the policy's passcodes. */
async function passcodeFromBasic(store: Store, profile: AuthenticationScope, credentials: ClientCredentials): Promise<PasscodePrincipal> {
  const basic = parseBasicAuthorization(credentials.authorization);
  if (basic === undefined) throw new EstError('EST_AUTH_REQUIRED');
  if (basic === null) throw new EstError('EST_AUTH_FAILED', { reason: 'malformed Authorization header' });
  const policy = profile.authenticationPolicy;
  const check = await verifyPasscode(store, policy.name, { username: basic.username, passcode: basic.password }, policy.enableUsernameForPasscode);
  if (!check.ok) throw new EstError('EST_AUTH_FAILED', { reason: `authentication failed: ${check.reason}` });
  return passcodePrincipal(check.record, policy, basic.username);
}

/**
 * `est-ra simulate --passcode-id`: as if the device had sent that passcode
 * (the store keeps only its hash). A passcode of another policy, or a
 * disabled one, gets the answer a device sending it would get.
 */
export function passcodeById(id: string): PasscodeAuthenticator {
  return async (store, profile) => {
    const policy = profile.authenticationPolicy;
    const record = await store.getPasscode(id);
    if (!record || record.policy !== policy.name || !record.enabled) {
      throw new EstError('EST_AUTH_FAILED', { reason: `authentication failed: ${UNKNOWN_PASSCODE}` });
    }
    return passcodePrincipal(record, policy, record.username ?? undefined);
  };
}

function passcodePrincipal(record: PasscodeRecord, policy: AuthenticationPolicy, username: string | undefined): PasscodePrincipal {
  const registered = record.registeredValues;
  return {
    kind: 'passcode',
    passcodeId: record.id,
    policy: policy.name,
    // The username only where the policy uses usernames: a client sending passcode:passcode must not put its secret in the records.
    ...(username && policy.enableUsernameForPasscode ? { username } : {}),
    ...(Object.keys(registered).length > 0 ? { registeredValues: registered } : {}),
  };
}

const ID_KP_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/** id-kp-cmcRA (RFC 6402 §2.10): the certificate of a registration authority (RFC 7030 §3.7). */
const ID_KP_CMC_RA = '1.3.6.1.5.5.7.3.28';

type CertificateVerdict = { ok: true; principal: Principal } | { ok: false; reason: string };

/** A TLS client certificate, read once, with its extended key usages (undefined: no EKU extension). */
interface ClientCertificate {
  readonly certificate: CertificateView;
  readonly usages?: readonly string[];
  /** The intermediates the client sent after it (the path validator may need them). */
  readonly sentChain?: () => readonly Buffer[];
}

function parseClientCertificate(credentials: ClientCredentials): ClientCertificate | { error: string } | undefined {
  const der = credentials.clientCertificate;
  if (!der) return undefined;
  try {
    const certificate = CertificateView.parse(der);
    return { certificate, usages: certificate.extendedKeyUsages(), sentChain: credentials.clientChain };
  } catch {
    return { error: 'it cannot be parsed' };
  }
}

/**
 * A downstream RA (RFC 7030 §3.7): its certificate carries id-kp-cmcRA and
 * chains to one of the policy's downstream_ra_cas. It enrolls and renews on
 * behalf of devices it has authenticated itself, so its certificate alone
 * authenticates the request. Undefined when the certificate is not an RA's
 * or the policy trusts no RA.
 */
async function checkDownstreamRa(policy: AuthenticationPolicy, client: ClientCertificate, now: Date): Promise<CertificateVerdict | undefined> {
  if (policy.downstreamRaCas.length === 0 || !client.usages?.includes(ID_KP_CMC_RA)) return undefined;
  const path = await validateClientPath(client, policy.downstreamRaCas.map(viewOf), now);
  if (!path.ok) return { ok: false, reason: `RA certificate not accepted: ${wordPathFailure(path, 'it was not issued by a downstream RA CA of the policy')}` };
  const revocation = await revocationVerdict(policy, client.certificate, path.issuer);
  if (!revocation.ok) return { ok: false, reason: `RA certificate not accepted: ${revocation.reason}` };
  return { ok: true, principal: { kind: 'ra', ...certificateIdentity(client.certificate), revocation: revocation.note } };
}

/**
 * A bootstrap certificate: pinned as it is, or with a path to one of the
 * policy's authentication CAs; valid now; with clientAuth among its extended
 * key usages when it has any (RFC 5280 §4.2.1.12).
 */
async function checkBootstrapCertificate(policy: AuthenticationPolicy, client: ClientCertificate, now: Date): Promise<CertificateVerdict> {
  const { certificate } = client;
  if (client.usages && !client.usages.includes(ID_KP_CLIENT_AUTH)) return { ok: false, reason: 'it has no clientAuth extended key usage' };
  const pinned = policy.pinnedCertificates.some((pin) => viewOf(pin).der.equals(certificate.der));
  let note: string | undefined;
  if (pinned) {
    if (now < certificate.notBefore || now > certificate.notAfter) {
      return { ok: false, reason: `pinned certificate outside its validity (${certificate.notAfter.toISOString()})` };
    }
  } else {
    const path = await validateClientPath(client, policy.authenticationCas.map(viewOf), now);
    if (!path.ok) return { ok: false, reason: wordPathFailure(path, 'it was not issued by an authentication CA of the policy and is not pinned') };
    const revocation = await revocationVerdict(policy, certificate, path.issuer);
    if (!revocation.ok) return revocation;
    note = revocation.note;
  }
  return {
    ok: true,
    principal: { kind: 'certificate', ...certificateIdentity(certificate), revocation: note, registeredValues: bootstrapValues(certificate) },
  };
}

/**
 * What a bootstrap / manufacturer certificate registers for the name
 * policy's user_supplied source (the IDevID → LDevID pattern): its subject
 * serialNumber, which is also the common name when it has one, else its CN.
 */
function bootstrapValues(certificate: CertificateView): Record<string, string[]> {
  let subject;
  try {
    subject = readNames(certificate.subjectDer, undefined).subject;
  } catch {
    return {}; // a subject the library cannot read registers nothing
  }
  const serial = subject.find((e) => e.kind === 'serial_number')?.value;
  const commonName = serial ?? subject.find((e) => e.kind === 'common_name')?.value;
  return { ...(commonName !== undefined ? { common_name: [commonName] } : {}), ...(serial !== undefined ? { serial_number: [serial] } : {}) };
}

/**
 * The path from a TLS client certificate to `anchors` (pki/path-validation.ts),
 * through the intermediates the client sent in its TLS Certificate message.
 */
function validateClientPath(
  client: ClientCertificate,
  anchors: readonly CertificateView[],
  now: Date,
  options: { validityDecidedByCaller?: boolean } = {},
): Promise<PathValidation> {
  return validatePath({ certificate: client.certificate, anchors, intermediates: client.sentChain?.() ?? [], now, ...options });
}

/** A refused path in one line: no path at all in the caller's words (which CAs it expected), any other failure as the validator names it. */
function wordPathFailure(path: PathValidation & { ok: false }, noPath: string): string {
  return path.code === 'no_path' ? noPath : path.reason;
}

function certificateIdentity(certificate: CertificateView): { subject: string; serial: string; issuer: string } {
  return { subject: certificate.subject, serial: certificate.serialNumber, issuer: certificate.issuer };
}

/**
 * /simplereenroll: the client presents the certificate it renews as its TLS
 * client certificate (RFC 7030 §4.2.2), and that certificate must chain to
 * the profile's CA. A downstream RA presents its own certificate instead and
 * vouches for the identity in the CSR (RFC 7030 §3.7): `certificate` is then
 * undefined.
 */
export async function authenticateReenroll(
  profile: AuthenticationScope,
  credentials: ClientCredentials,
  now: Date,
): Promise<{ principal: Principal; certificate: CertificateView | undefined; caPath?: readonly CertificateView[] }> {
  const client = parseClientCertificate(credentials);
  if (!client) {
    throw EstError.forbidden('EST_CLIENT_CERT_REQUIRED', 'simplereenroll requires the certificate being renewed as the TLS client certificate');
  }
  if ('error' in client) throw EstError.forbidden('EST_CLIENT_CERT_REJECTED', 'TLS client certificate cannot be parsed');
  const ra = await checkDownstreamRa(profile.authenticationPolicy, client, now);
  if (ra) {
    if (!ra.ok) throw EstError.forbidden('EST_CLIENT_CERT_REJECTED', ra.reason);
    return { principal: ra.principal, certificate: undefined };
  }
  const { certificate } = client;
  // Renewal decides about expired certificates itself (renewal_settings).
  // The profile's CA, and the CAs of certificates est-ra did not issue that the policy lets it renew (policy/renewal-origin.ts).
  const cas = [...(await profile.upstream.caCertificates()), ...profile.authenticationPolicy.renewalCas].map(viewOf);
  const path = await validateClientPath(client, cas, now, { validityDecidedByCaller: true });
  if (!path.ok) {
    throw EstError.forbidden(
      'EST_CLIENT_CERT_REJECTED',
      `TLS client certificate not accepted: ${wordPathFailure(path, "certificate was not issued by this profile's CA")}`,
    );
  }
  const revocation = await revocationVerdict(profile.authenticationPolicy, certificate, path.issuer, profile.renewRevokedCert);
  if (!revocation.ok) throw EstError.forbidden('EST_CLIENT_CERT_REJECTED', `TLS client certificate not accepted: ${revocation.reason}`);
  return { principal: { kind: 'certificate', ...certificateIdentity(certificate), revocation: revocation.note }, certificate, caPath: path.path.slice(1) };
}

/**
 * The policy's revocation check as a decision, with a note for the request
 * record: revoked is refused (unless `allowRevoked`, renew_revoked_cert);
 * unknown is refused in hard_fail and allowed, logged and counted in soft_fail.
 */
async function revocationVerdict(
  policy: AuthenticationPolicy,
  certificate: CertificateView,
  issuer: CertificateView,
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
    case 'ra':
      return `ra:${principal.serial} ${principal.subject}${principal.device ? ` for ${principal.device}` : ''}`;
    default:
      return undefined;
  }
}
