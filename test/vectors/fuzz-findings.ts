import { opensslIssue, opensslSelfSigned, type KeyAndCsr } from '../helpers/csr.js';

/**
 * What `npm run fuzz` (scripts/fuzz.ts, issue #10) found, as vectors made at
 * test time (no key is ever committed); test/est/fuzz-findings.spec.ts
 * replays each through the real server with a real client.
 */

/**
 * seed 1, kind `client certificate untrusted`: a TLS client certificate whose
 * issuer name is a CA est-ra trusts but whose signature is another key's.
 * Over TLS 1.2, Node 20 dropped the connection before reading the request
 * (OpenSSL's verify error stayed on its error queue; server.ts), so the
 * device got a reset instead of 403. Made here as a forger would: a
 * look-alike CA with the trusted CA's subject and its own key, and no key
 * identifier that would tell the two apart.
 */
export async function forgedClientCertificate(dir: string): Promise<{ trustedCaFile: string; device: KeyAndCsr & { certFile: string } }> {
  const subject = '/CN=Fuzz Manufacturing CA';
  const extensions = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign'];
  const trusted = await opensslSelfSigned(dir, 'fuzz-trusted-ca', { subject, days: 3650, addext: extensions });
  const lookalike = await opensslSelfSigned(dir, 'fuzz-lookalike-ca', { subject, days: 3650, addext: extensions });
  const device = await opensslIssue(dir, 'fuzz-forged-device', {
    subject: '/CN=forged-device',
    caFile: lookalike.certFile,
    caKeyFile: lookalike.keyFile,
    // No key identifiers (as the fuzzer's certificates): OpenSSL then takes the trusted CA as the issuer by name and
    // checks the signature against its key, the case that dropped the connection. With an authorityKeyIdentifier
    // that is not the trusted CA's, OpenSSL skips that CA and never checks the signature.
    extensions: ['basicConstraints=CA:FALSE', 'extendedKeyUsage=clientAuth', 'subjectKeyIdentifier=none', 'authorityKeyIdentifier=none'],
  });
  return { trustedCaFile: trusted.certFile, device };
}

/**
 * seed 1, kind `upstream 202 odd Retry-After`: an upstream 202 whose
 * Retry-After delay-seconds lie past any JavaScript Date. est-ra's next poll
 * became an invalid Date and recording it threw: a 500 to the device. The
 * test upstream answers this in its mode `pending-far`.
 */
export const FAR_RETRY_AFTER = '99999999999999999999';
