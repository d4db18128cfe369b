import { EstError } from '../errors.js';
import { viewOf, type CertificateView } from '../pki/certificate-view.js';
import type { Store } from '../store/types.js';
import type { Profile, ProfileDirectory } from './profile.js';

const refuse = (reason: string): EstError => new EstError('EST_RENEWAL_REFUSED', { reason });

/**
 * A renewal is judged by the profile that issued the certificate, so a
 * device cannot shop for the profile with the laxest renewal window or name
 * rules among those that share a CA. est-ra recorded every certificate it
 * issued and under which profile; a certificate it never issued may be
 * renewed only under a profile whose authentication policy lists a CA of its
 * validated path, its issuer or one above, in `renewal_cas` (devices moving in
 * from another RA).
 */
export async function checkRenewalOrigin(
  store: Store,
  profiles: ProfileDirectory,
  profile: Profile,
  current: CertificateView,
  /** The CAs of its validated path, its issuer first and the anchor last. */
  caPath: readonly CertificateView[],
): Promise<void> {
  const issued = await store.findIssuedBySerial(current.serialNumber);
  if (issued?.der.equals(current.der)) {
    if (issued.profile === profile.name) return;
    const origin = profiles.named(issued.profile);
    if (!origin) throw refuse(`certificate was issued under profile '${issued.profile}', which is no longer configured`);
    const label = origin.labels[0] ?? '';
    throw refuse(`certificate was issued under profile '${issued.profile}'; renew it there (/.well-known/est/${label ? `${label}/` : ''}simplereenroll)`);
  }
  const listed = profile.authenticationPolicy.renewalCas.some((ca) => caPath.some((onPath) => onPath.der.equals(viewOf(ca).der)));
  if (!listed) {
    throw refuse(
      `certificate was not issued by est-ra, and the authentication policy '${profile.authenticationPolicy.name}' lists none of its CAs in renewal_cas`,
    );
  }
}
