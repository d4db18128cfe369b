import type { x509 } from '../pki/x509.js';
import type { RevocationChecker } from './revocation.js';

/** An authentication policy: its passcodes live in the store, its certificates here. */
export interface AuthenticationPolicy {
  readonly name: string;
  readonly enableUsernameForPasscode: boolean;
  /** Bootstrap / manufacturer CAs whose client certificates authenticate an enrollment. */
  readonly authenticationCas: readonly x509.X509Certificate[];
  /** Client certificates accepted as they are. */
  readonly pinnedCertificates: readonly x509.X509Certificate[];
  /** CAs of downstream RAs (RFC 7030 §3.7) whose id-kp-cmcRA certificates enroll and renew on behalf of devices. */
  readonly downstreamRaCas: readonly x509.X509Certificate[];
  /** CAs whose certificates est-ra did not issue but may renew under this policy's profiles (renewal_cas). */
  readonly renewalCas: readonly x509.X509Certificate[];
  /** Revocation checking of bootstrap and renewal certificates; undefined when off. */
  readonly revocation?: RevocationChecker;
  /** soft_fail: called when a status is unknown and the request is let through. */
  readonly onRevocationUnknown?: (reason: string) => void;
}

/**
 * What authentication needs to know of a profile (policy/profile.ts Profile
 * is one): its policy, how simpleenroll authenticates, whether revoked
 * certificates may renew, and the CA certificates renewals chain to.
 */
export interface AuthenticationScope {
  readonly authenticationPolicy: AuthenticationPolicy;
  /** How /simpleenroll authenticates (enroll_authentication). */
  readonly enrollAuthentication: { readonly methods: readonly ('passcode' | 'client_certificate')[]; readonly requireAll: boolean };
  /** renewal_settings.renew_revoked_cert: a revoked certificate may still be renewed. */
  readonly renewRevokedCert: boolean;
  readonly upstream: { caCertificates(): Promise<readonly x509.X509Certificate[]> };
}
