import { EstError } from '../errors.js';
import type { VerifiedCsr } from '../pki/csr.js';
import type { CertificateView } from '../pki/certificate-view.js';
import { ID_CE_SUBJECT_ALT_NAME } from '../pki/identity.js';
import { readNames, type IssuedNames, type Names } from '../pki/names.js';
import { requestedExtensions } from '../pki/csr-extensions.js';
import { signatureAlgorithmOid } from '../pki/signature.js';
import type { Principal } from '../store/types.js';
import { sameEntries, type NamePolicy, type RegisteredValues } from './name-policy.js';
import { applyRules, type DecisionTrace, type RuleContext } from './rules.js';
import type { Profile } from './profile.js';

/** What the policy step decided for a request that may go on. */
export interface Decision {
  /** The names the certificate will carry (the local CA issues exactly these). */
  readonly names: IssuedNames;
}

/** ecdsa-with-SHA1, sha1WithRSAEncryption, and the old DSA/RSA SHA-1 OIDs some embedded stacks still emit. */
const SHA1_SIGNATURES: ReadonlySet<string> = new Set(['1.2.840.10045.4.1', '1.2.840.113549.1.1.5', '1.3.14.3.2.29', '1.2.840.10040.4.3']);

/**
 * The policy step of every enrollment (est → authenticate → decide → record
 * → upstream): the profile's rules (hours, key type, renewal window, channel
 * binding), the CSR's proof-of-possession hash, what the certificate may say
 * (subject and SAN rules, or on renewal the identity being renewed), and,
 * where the CSR is forwarded unchanged, the extensions it asks for. Throws
 * the refusal; returns what to issue.
 */
export function decide(profile: Profile, context: RuleContext, trace?: DecisionTrace): Decision {
  applyRules(profile.rules, context, trace);
  const { csr, current } = context;
  trace?.step('signatureAlgorithm');
  // /serverkeygen: the CSR's signature proves nothing est-ra uses (RFC 7030 §4.4.1: the server ignores it).
  if (context.operation !== 'serverkeygen' && !profile.allowSha1ProofOfPossession && SHA1_SIGNATURES.has(signatureAlgorithmOid(csr.der))) {
    throw new EstError('EST_SIGNATURE_ALGORITHM', { reason: 'the CSR is signed with SHA-1, which the profile does not accept as proof of possession' });
  }
  trace?.step(current ? 'keptIdentity' : 'subject');
  const requested = requestedNames(csr);
  const names = current
    ? keptIdentity(current, requested)
    : profile.names.decide(requested, registeredValuesOf(context.principal), () => trace?.step('subjectAltName'));
  if (profile.forwardsCsrUnchanged) {
    trace?.step('requestedExtensions');
    checkRequestedExtensions(profile, csr);
  }
  return { names };
}

/** The names a queued request will be issued with, decided again from what was recorded (the retry worker). */
export function namesForRecorded(names: NamePolicy, csr: VerifiedCsr, principal: Principal, current: CertificateView | undefined): IssuedNames {
  const requested = requestedNames(csr);
  return current ? keptIdentity(current, requested) : names.decide(requested, registeredValuesOf(principal));
}

function requestedNames(csr: VerifiedCsr): Names {
  try {
    return readNames(csr.subjectDer, csr.subjectAltName);
  } catch (cause) {
    throw EstError.badRequest('EST_CSR_MALFORMED', 'the CSR subject or subjectAltName cannot be read', cause);
  }
}

/** What a credential registers: a passcode's values, or a bootstrap certificate's (see auth/authenticate.ts). */
function registeredValuesOf(principal: Principal): RegisteredValues | undefined {
  return principal.kind === 'passcode' || principal.kind === 'certificate' ? principal.registeredValues : undefined;
}

/**
 * RFC 7030 §4.2.2: a renewal keeps the subject and subjectAltName of the
 * certificate it renews. A CSR that names nothing asks for nothing else; a
 * CSR that names another identity is refused here, before anything reaches
 * an upstream, so no CA ever issues a certificate nobody may receive.
 */
function keptIdentity(current: CertificateView, requested: Names): IssuedNames {
  const held = readNames(current.subjectDer, current.extension(ID_CE_SUBJECT_ALT_NAME));
  const asksNothing = requested.subject.length === 0 && requested.san.length === 0;
  if (!asksNothing && !(sameEntries(held.subject, requested.subject) && sameEntries(held.san, requested.san))) {
    throw new EstError('EST_RENEWAL_IDENTITY', {
      reason: `a renewal keeps the certificate's identity (RFC 7030 §4.2.2): it has ${describe(held)}; the CSR asks for ${describe(requested)}`,
    });
  }
  return { ...(held as Omit<IssuedNames, 'asRequested'>), asRequested: !asksNothing };
}

/** Short names, as openssl prints them, so both identities fit on the one line of a refusal. */
const SHORT: Readonly<Record<string, string>> = {
  common_name: 'CN=',
  organization_name: 'O=',
  organization_unit: 'OU=',
  street_address: 'street=',
  postal_code: 'postalCode=',
  locality: 'L=',
  state: 'ST=',
  country: 'C=',
  email: 'emailAddress=',
  serial_number: 'serialNumber=',
};
const SHORT_SAN: Readonly<Record<string, string>> = { dns_name: 'DNS:', ip_address: 'IP:', email: 'email:', user_principal_name: 'UPN:', uri: 'URI:' };

function describe(names: Names): string {
  const parts = [
    ...names.subject.map((e) => `${SHORT[e.kind] ?? `${e.kind}=`}${e.value}`),
    ...names.san.map((e) => `${SHORT_SAN[e.kind] ?? `${e.kind}:`}${e.value}`),
  ];
  return parts.length > 0 ? parts.join(', ') : 'nothing';
}

const ALLOWED_FORWARDED = new Set(['2.5.29.17', '2.5.29.19', '2.5.29.15', '2.5.29.37', '2.5.29.14']);
/** keyCertSign and cRLSign in asn1-x509's KeyUsageFlags. */
const CA_KEY_USAGES = 32 | 64;

/**
 * An upstream cannot have a CSR changed, and some honour what a CSR asks
 * for; so a CSR forwarded unchanged may ask only for what the profile would
 * issue: its names (checked above), keyUsage without CA bits,
 * extendedKeyUsage within the profile's, basicConstraints without cA, a
 * subjectKeyIdentifier.
 */
function checkRequestedExtensions(profile: Profile, csr: VerifiedCsr): void {
  let extensions;
  try {
    extensions = requestedExtensions(csr.der);
  } catch (cause) {
    throw EstError.badRequest('EST_CSR_MALFORMED', "the CSR's extensionRequest cannot be read", cause);
  }
  const refuse = (reason: string): EstError => new EstError('EST_EXTENSION_NOT_ALLOWED', { reason });
  for (const extension of extensions) {
    if (!ALLOWED_FORWARDED.has(extension.oid)) throw refuse(`the CSR asks for extension ${extension.oid}, which the profile does not issue`);
    if (extension.ca) throw refuse('the CSR asks for basicConstraints cA TRUE; the profile issues end-entity certificates only');
    if (extension.keyUsageBits !== undefined && (extension.keyUsageBits & CA_KEY_USAGES) !== 0)
      throw refuse('the CSR asks for keyCertSign or cRLSign key usage');
    const extra = extension.extendedKeyUsages?.find((oid) => !profile.extendedKeyUsageOids.includes(oid));
    if (extra !== undefined) throw refuse(`the CSR asks for extended key usage ${extra}, which the profile does not issue`);
  }
}
