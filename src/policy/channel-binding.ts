import { timingSafeEqual } from 'node:crypto';
import { EstError } from '../errors.js';
import type { CsrRule } from './rules.js';

/**
 * RFC 7030 §3.5: the CSR proves it was made for this TLS session, by carrying
 * the session's channel binding, base64-encoded, in its challengePassword.
 * That ties the proof of possession to the authenticated connection, so a
 * CSR cannot be replayed over another one.
 */
export function channelBindingMatches(): CsrRule {
  return {
    name: 'channelBindingMatches',
    check({ csr, channelBinding }) {
      if (!channelBinding) throw new EstError('EST_CHANNEL_BINDING', { reason: 'this TLS connection offers no channel binding' });
      const presented = csr.challengePassword === undefined ? undefined : Buffer.from(csr.challengePassword.trim(), 'base64');
      const matches = presented?.length === channelBinding.value.length && timingSafeEqual(presented, channelBinding.value);
      if (!matches) {
        throw new EstError('EST_CHANNEL_BINDING', {
          reason: `the CSR's challengePassword must be the base64 ${channelBinding.type} of this TLS connection (RFC 7030 §3.5)`,
        });
      }
    },
  };
}
