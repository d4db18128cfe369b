import type { Config } from './schema.js';

/**
 * Settings that are valid but weak: `est-ra check-config` prints each as a
 * warning and still exits 0 (the admin chose them; DigiCert's profiles list
 * them too). One line each, naming the setting.
 */
export function configWarnings(config: Pick<Config, 'profiles'>): string[] {
  const warnings: string[] = [];
  for (const [name, profile] of Object.entries(config.profiles)) {
    // NIST SP 800-131A Rev. 2 §3: RSA keys under 2048 bits are disallowed for signatures since 2013 (~80 bits of security).
    if (profile.allowed_key_types.includes('rsa_1024')) {
      warnings.push(`profiles.${name}.allowed_key_types: rsa_1024 is allowed; 1024-bit RSA keys are too weak (NIST SP 800-131A disallows them since 2013)`);
    }
  }
  return warnings;
}
