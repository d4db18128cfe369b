import { EstError } from '../errors.js';
import type { CsrRule } from './rules.js';

/** DigiCert's renewal_settings (certificate profile), as est-ra reads them. */
export interface RenewalSettings {
  /** anytime · never · N: from N days before notAfter. */
  readonly renew_valid_cert: 'anytime' | 'never' | number;
  /** anytime · never · N: up to N days after notAfter. */
  readonly renew_expired_cert: 'anytime' | 'never' | number;
  readonly renewal_key_pair: 'new_key_required' | 'optional' | 'same_key_only';
}

const DAY_MS = 86_400_000;
const day = (date: Date): string => date.toISOString().slice(0, 10);
const refuse = (reason: string): EstError => new EstError('EST_RENEWAL_REFUSED', { reason });

/**
 * simplereenroll only (RFC 7030 §4.2.2): whether the certificate presented
 * may be renewed now, and with which key. Each refusal says when renewal
 * opens or closes, e.g. "renewal opens 30 days before expiry: 2027-03-01".
 */
export function renewalAllowed(settings: RenewalSettings): CsrRule {
  return {
    name: 'renewalAllowed',
    check({ operation, current, csr, now }) {
      if (operation !== 'simplereenroll' || !current) return;
      const notAfter = current.notAfter;
      if (now < current.notBefore) throw refuse(`certificate is not valid before ${current.notBefore.toISOString()}`);
      if (now <= notAfter) {
        const valid = settings.renew_valid_cert;
        if (valid === 'never') throw refuse('renewal of a valid certificate is not allowed by profile');
        if (typeof valid === 'number') {
          const opens = new Date(notAfter.getTime() - valid * DAY_MS);
          if (now < opens) throw refuse(`renewal opens ${valid} days before expiry: ${day(opens)}`);
        }
      } else {
        const expired = settings.renew_expired_cert;
        if (expired === 'never') throw refuse(`certificate expired ${day(notAfter)}; renewal of an expired certificate is not allowed by profile`);
        if (typeof expired === 'number') {
          const closed = new Date(notAfter.getTime() + expired * DAY_MS);
          if (now > closed) throw refuse(`renewal closed ${expired} days after expiry: ${day(closed)}`);
        }
      }
      const sameKey = current.subjectPublicKeyInfo.equals(csr.subjectPublicKeyInfo);
      if (sameKey && settings.renewal_key_pair === 'new_key_required') throw refuse("renewal needs a new key pair: the CSR reuses the certificate's key");
      if (!sameKey && settings.renewal_key_pair === 'same_key_only') throw refuse('renewal must keep the key pair: the CSR has a new key');
    },
  };
}
