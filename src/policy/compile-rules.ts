import { EXTENDED_KEY_USAGE, type ExtendedKeyUsageName } from '../pki/certificate-builder.js';
import { SAN_TYPES, type SanType } from '../pki/names.js';
import { channelBindingMatches } from './channel-binding.js';
import { NamePolicy, type NamePolicyConfig, type SanRule } from './name-policy.js';
import type { Profile } from './profile.js';
import { renewalAllowed, type RenewalSettings } from './renewal.js';
import { keyGenerationAllowed, keyTypeAllowed } from './rules.js';
import { withinUsageRestrictions, type UsageRestrictions } from './usage-restrictions.js';

/** The profile settings the policy step reads, by their configuration names (config/schema.ts). */
export interface ProfileRuleSettings {
  readonly upstream: 'local-ca' | 'est';
  readonly usage_restrictions?: UsageRestrictions;
  readonly allowed_key_types: readonly string[];
  readonly key_generation_option: 'client_side' | 'server_side' | 'either';
  readonly rsa_min_public_exponent: number;
  readonly renewal_settings: RenewalSettings & { readonly renew_revoked_cert: boolean };
  readonly channel_binding: boolean;
  readonly subject: NamePolicyConfig['subject'];
  readonly san: Readonly<Record<SanType, Omit<SanRule, 'autoIncludeCn'> & { readonly auto_include_cn: boolean }>>;
  readonly allow_sha1_proof_of_possession: boolean;
  readonly extended_key_usage: readonly ExtendedKeyUsageName[];
}

export type ProfileRules = Pick<
  Profile,
  | 'rules'
  | 'names'
  | 'allowSha1ProofOfPossession'
  | 'forwardsCsrUnchanged'
  | 'extendedKeyUsageOids'
  | 'channelBinding'
  | 'renewRevokedCert'
  | 'keyGeneration'
  | 'allowedKeyTypes'
>;

/**
 * Compiles a profile's settings into the rules the policy step (decide.ts)
 * applies to every request, once at load: a list of small named rules
 * (hours, key type, renewal window, channel binding) and the name policy.
 */
export function compileProfileRules(settings: ProfileRuleSettings): ProfileRules {
  return {
    rules: [
      keyGenerationAllowed(settings.key_generation_option),
      ...(settings.usage_restrictions ? [withinUsageRestrictions(settings.usage_restrictions)] : []),
      keyTypeAllowed(settings.allowed_key_types, BigInt(settings.rsa_min_public_exponent)),
      renewalAllowed(settings.renewal_settings),
      ...(settings.channel_binding ? [channelBindingMatches()] : []),
    ],
    names: new NamePolicy(namePolicyConfig(settings)),
    allowSha1ProofOfPossession: settings.allow_sha1_proof_of_possession,
    forwardsCsrUnchanged: settings.upstream === 'est',
    extendedKeyUsageOids: settings.extended_key_usage.map((name) => EXTENDED_KEY_USAGE[name]),
    channelBinding: settings.channel_binding,
    renewRevokedCert: settings.renewal_settings.renew_revoked_cert,
    keyGeneration: settings.key_generation_option,
    allowedKeyTypes: settings.allowed_key_types,
  };
}

/** The subject.* and san.* settings as the name policy takes them. */
function namePolicyConfig(settings: ProfileRuleSettings): NamePolicyConfig {
  const san = {} as Record<SanType, SanRule>;
  for (const type of SAN_TYPES) {
    const { auto_include_cn, ...rule } = settings.san[type];
    san[type] = { ...rule, autoIncludeCn: auto_include_cn };
  }
  return { subject: settings.subject, san };
}
