import type { FullCmcRoute, Upstream } from '../upstream/types.js';
import type { AuthenticationPolicy } from '../auth/authentication-policy.js';
import type { AddressAllowlist } from '../auth/allowlist.js';
import type { CsrRule } from './rules.js';
import type { NamePolicy } from './name-policy.js';

export type { AuthenticationPolicy } from '../auth/authentication-policy.js';
export type { FullCmcRoute } from '../upstream/types.js';

/** A profile from the configuration, compiled into what a request needs at run time. */
export interface Profile {
  readonly name: string;
  /** Label paths that select it; '' when it serves the bare /.well-known/est/ path. */
  readonly labels: readonly string[];
  readonly authenticationPolicy: AuthenticationPolicy;
  /** How /simpleenroll authenticates (enroll_authentication). */
  readonly enrollAuthentication: { readonly methods: readonly ('passcode' | 'client_certificate')[]; readonly requireAll: boolean };
  readonly rules: readonly CsrRule[];
  /** What the certificate may say (subject.*, san.*). */
  readonly names: NamePolicy;
  /** allow_sha1_proof_of_possession. */
  readonly allowSha1ProofOfPossession: boolean;
  /** true for `upstream: est`: the CSR goes up as the device made it, so it may ask only for what the profile issues. */
  readonly forwardsCsrUnchanged: boolean;
  /** The extended key usages the profile issues, as OIDs. */
  readonly extendedKeyUsageOids: readonly string[];
  /** renewal_settings.renew_revoked_cert: a revoked certificate may still be renewed. */
  readonly renewRevokedCert: boolean;
  /** The CSR's challengePassword must carry the TLS channel binding (RFC 7030 §3.5). */
  readonly channelBinding: boolean;
  /**
   * require_approval_for_enroll / _renew: such requests wait, recorded, for
   * an administrator (est-ra approvals); the device is told to come back
   * after retryAfterS (RFC 7030 §4.2.3), and an undecided one expires.
   */
  readonly approval: { readonly enroll: boolean; readonly renew: boolean; readonly retryAfterS: number; readonly expiresAfterMs: number };
  /** key_generation_option: who makes the key, the device (simpleenroll) or est-ra (/serverkeygen, RFC 7030 §4.4). */
  readonly keyGeneration: 'client_side' | 'server_side' | 'either';
  /** allowed_key_types; /serverkeygen makes the only one, or the CSR's type among several. */
  readonly allowedKeyTypes: readonly string[];
  /** Who may talk to this profile at all (allowed_ip_addresses). */
  readonly allowlist: AddressAllowlist;
  /** Where certificates come from; its CA certificates are the ones this profile renews under. */
  readonly upstream: Upstream;
  /** base64_framing: how base64 answers are laid out, `auto` choosing per request (est/respond.ts framingFor). */
  readonly base64Framing: 'auto' | 'wrapped' | 'single_line';
  /** fullcmc: passthrough with an est upstream: where /fullcmc is relayed; absent: 501. */
  readonly fullCmcRoute?: () => FullCmcRoute;
  /** The certs-only PKCS#7 answered by /cacerts (RFC 7030 §4.1.3). */
  cacertsPkcs7(): Promise<Buffer>;
  /** DER CsrAttrs, or undefined when the profile asks for nothing (204). */
  csrAttrs(): Promise<Buffer | undefined>;
}

/** Finds the profile a label path selects (RFC 7030 §3.2.2: one or more path segments). */
export class ProfileDirectory {
  private byLabel = new Map<string, Profile>();
  private byName = new Map<string, Profile>();
  private current: readonly Profile[] = [];

  constructor(profiles: readonly Profile[]) {
    this.replace(profiles);
  }

  get profiles(): readonly Profile[] {
    return this.current;
  }

  /** Serves `profiles` from now on (a reload); requests already past routing keep the profile they resolved. */
  replace(profiles: readonly Profile[]): void {
    const byLabel = new Map<string, Profile>();
    const byName = new Map<string, Profile>();
    for (const profile of profiles) {
      byName.set(profile.name, profile);
      for (const label of profile.labels) byLabel.set(label, profile);
    }
    this.byLabel = byLabel;
    this.byName = byName;
    this.current = profiles;
  }

  /** The profile a stored request names. */
  named(name: string): Profile | undefined {
    return this.byName.get(name);
  }

  /** @param label segments joined by '/', '' for the bare path. */
  resolve(label: string): Profile | undefined {
    return this.byLabel.get(label);
  }
}
