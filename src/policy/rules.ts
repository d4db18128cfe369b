import { EstError } from '../errors.js';
import type { VerifiedCsr } from '../pki/csr.js';
import type { CertificateView } from '../pki/certificate-view.js';
import type { Operation, Principal } from '../store/types.js';
import type { ChannelBinding } from '../auth/authenticate.js';

/** Everything a rule may look at. */
export interface RuleContext {
  readonly operation: Operation;
  readonly csr: VerifiedCsr;
  readonly principal: Principal;
  /** simplereenroll: the certificate being renewed (authenticated by TLS). */
  readonly current?: CertificateView;
  /** This TLS connection's channel binding, when the profile asks for it. */
  readonly channelBinding?: ChannelBinding;
  readonly now: Date;
}

/** One named check a profile applies to every request before it goes upstream. Throws EstError(403) to refuse. */
export interface CsrRule {
  readonly name: string;
  check(context: RuleContext): void;
}

/**
 * The CSR's key must be one of the profile's `allowed_key_types` (DigiCert's
 * names), and an RSA key's public exponent odd and at least
 * `rsa_min_public_exponent`: with e = 1 the "signature" is the encoded
 * message itself, so it proves possession of no private key at all, and
 * small exponents are what every RSA padding attack feeds on.
 */
export function keyTypeAllowed(allowed: readonly string[], rsaMinPublicExponent = 65537n): CsrRule {
  const set = new Set(allowed);
  return {
    name: 'keyTypeAllowed',
    check({ csr, operation }) {
      // /serverkeygen: the CSR's key is a template only (RFC 7030 §4.4.1: the server ignores its value); it
      // chooses among several allowed types, and with one allowed type est-ra makes that one whatever it is.
      if (operation === 'serverkeygen') {
        if (allowed.length > 1 && !set.has(csr.keyType))
          throw EstError.forbidden(
            'EST_KEY_TYPE',
            `key type ${csr.keyType} not allowed by profile (allowed: ${allowed.join(', ')}); the new key takes the CSR's type`,
          );
        return;
      }
      if (!set.has(csr.keyType)) {
        throw EstError.forbidden('EST_KEY_TYPE', `key type ${csr.keyType} not allowed by profile (allowed: ${allowed.join(', ')})`);
      }
      const exponent = csr.rsaPublicExponent;
      if (exponent !== undefined && (exponent % 2n === 0n || exponent < rsaMinPublicExponent)) {
        throw EstError.forbidden('EST_KEY_TYPE', `RSA public exponent ${exponent} not allowed by profile (odd, at least ${rsaMinPublicExponent})`);
      }
    },
  };
}

/**
 * DigiCert's key_generation_option: a `server_side` profile's keys are made by
 * est-ra (/serverkeygen, RFC 7030 §4.4), so a request for a key the client
 * made is refused. (/serverkeygen under `client_side` never gets here: the
 * router answers 501, the operation not being offered.)
 */
export function keyGenerationAllowed(option: 'client_side' | 'server_side' | 'either'): CsrRule {
  return {
    name: 'keyGenerationAllowed',
    check({ operation }) {
      if (option === 'server_side' && operation !== 'serverkeygen')
        throw new EstError('EST_KEY_GENERATION', {
          reason: `this profile generates its devices' keys (key_generation_option: server_side): use /serverkeygen, not /${operation}`,
        });
    },
  };
}

/**
 * Told of each step of the policy decision before it is taken (`est-ra
 * simulate` prints them): the step that throws is the one that refused.
 * Returning false skips a rule (simulate: channel binding, which only the
 * device's own TLS connection can show). The HTTP path passes none.
 */
export interface DecisionTrace {
  step(name: string): boolean | undefined;
}

/** Runs every rule in order; the first refusal wins. */
export function applyRules(rules: readonly CsrRule[], context: RuleContext, trace?: DecisionTrace): void {
  for (const rule of rules) if (trace?.step(rule.name) !== false) rule.check(context);
}
