import type { x509 } from '../pki/x509.js';
import type { Upstream } from '../upstream/types.js';
import type { CsrRule } from './rules.js';

/** A profile from the configuration, compiled into what a request needs at run time. */
export interface Profile {
  readonly name: string;
  /** Label paths that select it; '' when it serves the bare /.well-known/est/ path. */
  readonly labels: readonly string[];
  readonly authenticationPolicy: { readonly name: string; readonly enableUsernameForPasscode: boolean };
  readonly rules: readonly CsrRule[];
  readonly upstream: Upstream;
  /** The CA that issued the certificates this profile renews. */
  readonly issuingCa: x509.X509Certificate;
  /** The certs-only PKCS#7 of the CA certificates, built once. */
  readonly caCertsPkcs7: Buffer;
  /** DER CsrAttrs, or undefined when the profile asks for nothing (204). */
  readonly csrAttrs?: Buffer;
}

/** Finds the profile a label path selects (RFC 7030 §3.2.2: one or more path segments). */
export class ProfileDirectory {
  private readonly byLabel = new Map<string, Profile>();

  constructor(readonly profiles: readonly Profile[]) {
    for (const profile of profiles) for (const label of profile.labels) this.byLabel.set(label, profile);
  }

  /** @param label segments joined by '/', '' for the bare path. */
  resolve(label: string): Profile | undefined {
    return this.byLabel.get(label);
  }
}
