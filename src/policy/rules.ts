import { EstError } from '../errors.js';
import type { VerifiedCsr } from '../pki/csr.js';
import type { Principal } from '../store/types.js';

/** One named check a profile applies to every CSR before it goes upstream. Throws EstError(403) to refuse. */
export interface CsrRule {
  readonly name: string;
  check(csr: VerifiedCsr, principal: Principal, now: Date): void;
}

/** The CSR's key must be one of the profile's `allowed_key_types` (DigiCert's names). */
export function keyTypeAllowed(allowed: readonly string[]): CsrRule {
  const set = new Set(allowed);
  return {
    name: 'keyTypeAllowed',
    check(csr) {
      if (!set.has(csr.keyType)) {
        throw EstError.forbidden('EST_KEY_TYPE', `key type ${csr.keyType} not allowed by profile (allowed: ${allowed.join(', ')})`);
      }
    },
  };
}

/** Runs every rule in order; the first refusal wins. */
export function applyRules(rules: readonly CsrRule[], csr: VerifiedCsr, principal: Principal, now: Date): void {
  for (const rule of rules) rule.check(csr, principal, now);
}
