import { toCidrBlocks } from '../auth/allowlist.js';
import { isPqcKeyType, PQC_KEY_TYPES } from '../pki/key-type.js';
import type { Config } from './schema.js';

/**
 * The fewest octets of DER around a PQC key and signature in a CSR (empty
 * subject, no attributes): SEQUENCE headers, version, the two
 * AlgorithmIdentifiers, the BIT STRING headers.
 */
const CSR_FRAMING_OCTETS = 55;

/**
 * The widest block of load balancers `listen.proxy_protocol.from` names
 * without a warning: a /24 (IPv4) or /120 (IPv6), 256 addresses. Balancers
 * are a few known hosts; every address in `from` may claim to be any device
 * and so pass any profile's address allowlist.
 */
const MAX_BALANCER_BLOCK_BITS = 8;

/**
 * Settings that are valid but weak or self-defeating: `est-ra check-config`
 * prints each as a warning and still exits 0 (the admin chose them;
 * DigiCert's profiles list them too). One line each, naming the setting.
 */
export function configWarnings(config: Pick<Config, 'profiles' | 'limits' | 'listen'>): string[] {
  const warnings: string[] = [...proxyProtocolWarnings(config.listen)];
  for (const [name, profile] of Object.entries(config.profiles)) {
    // NIST SP 800-131A Rev. 2 §3: RSA keys under 2048 bits are disallowed for signatures since 2013 (~80 bits of security).
    if (profile.allowed_key_types.includes('rsa_1024')) {
      warnings.push(`profiles.${name}.allowed_key_types: rsa_1024 is allowed; 1024-bit RSA keys are too weak (NIST SP 800-131A disallows them since 2013)`);
    }
    // SLH-DSA-*-256f signatures are 49 856 octets: in base64 (RFC 7030 §4.2.1) such a CSR exceeds init's 64 KiB body limit.
    for (const keyType of profile.allowed_key_types) {
      if (!isPqcKeyType(keyType)) continue;
      const { publicKeySize, signatureSize } = PQC_KEY_TYPES[keyType];
      const base64Octets = Math.ceil((publicKeySize + signatureSize + CSR_FRAMING_OCTETS) / 3) * 4;
      if (base64Octets > config.limits.max_body_bytes) {
        warnings.push(
          `profiles.${name}.allowed_key_types: a ${keyType} CSR in base64 is at least ${base64Octets} bytes, over limits.max_body_bytes (${config.limits.max_body_bytes}): such requests get 413`,
        );
      }
    }
  }
  return warnings;
}

/** An entry of `listen.proxy_protocol.from` wider than MAX_BALANCER_BLOCK_BITS: its hosts could pose as any device. */
function proxyProtocolWarnings(listen: Config['listen']): string[] {
  return (listen.proxy_protocol?.from ?? []).flatMap((entry) => {
    const widest = Math.max(...toCidrBlocks(entry.trim()).map((block) => (block.includes(':') ? 128 : 32) - Number(block.split('/')[1])));
    if (widest <= MAX_BALANCER_BLOCK_BITS) return [];
    const size = widest >= 32 ? `2^${widest}` : String(2 ** widest);
    return [
      `listen.proxy_protocol.from: '${entry}' takes PROXY headers from blocks of up to ${size} addresses; any host there can claim any device's address and pass the address allowlists: name the load balancers themselves`,
    ];
  });
}
