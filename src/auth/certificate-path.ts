import { createHash } from 'node:crypto';
import { CertificateView } from '../pki/certificate-view.js';
import { checkIssuedBy } from './client-certificate.js';

/** A path from a TLS client certificate to a configured trust anchor. */
export type PathCheck =
  | {
      readonly ok: true;
      /** The certificate that signed the client's: an anchor, or the first intermediate (revocation is checked against it). */
      readonly issuer: CertificateView;
    }
  /** `noIssuer`: no anchor and no sent intermediate even names the certificate's issuer; the caller words that case. */
  | { readonly ok: false; readonly reason: string; readonly noIssuer?: true };

/** Intermediates a client may put between its certificate and an anchor: real PKIs use one or two. */
const MAX_INTERMEDIATES = 4;
/** Intermediates parsed once and kept by their DER: every device of a line sends the same ones. */
const PARSED_CACHE_LIMIT = 256;
const parsed = new Map<string, CertificateView | null>();

const NO_ISSUER: PathCheck = { ok: false, reason: 'no path to a trust anchor', noIssuer: true };

/**
 * Finds a path from `certificate` to one of `anchors` (RFC 5280 §6.1, for
 * what an RA needs): an anchor signed it directly, or a chain of CA
 * certificates that the client sent in its TLS Certificate message leads to
 * one. Every configured certificate is an anchor, an intermediate too, as an
 * administrator pastes "the issuing CAs" into DigiCert's EST authentication.
 * Each certificate on the path is checked for signature and validity at
 * `now`, and every intermediate must be a CA (basicConstraints, keyCertSign).
 * `sentChain` is called only when no anchor signed the certificate directly,
 * so the common one-step case costs no chain extraction.
 * `validityDecidedByCaller` leaves the client certificate's own validity to
 * the caller (renewal of an expired certificate).
 */
export async function findCertificatePath(
  certificate: CertificateView,
  anchors: readonly CertificateView[],
  sentChain: (() => readonly Buffer[]) | undefined,
  now: Date,
  options: { validityDecidedByCaller?: boolean } = {},
): Promise<PathCheck> {
  const direct = await signedByAnchor(certificate, anchors, now, options);
  if (direct.ok) return direct;
  if (direct.reason !== undefined) return { ok: false, reason: direct.reason };
  if (!sentChain) return NO_ISSUER;
  const candidates = sentChain()
    .map(parseOnce)
    .filter((c): c is CertificateView => c !== null && isCa(c) && !c.der.equals(certificate.der));
  return (await climb(certificate, [], candidates, anchors, now, options)) ?? NO_ISSUER;
}

type AnchorCheck = { readonly ok: true; readonly issuer: CertificateView } | { readonly ok: false; readonly reason?: string };

/** One of the anchors signed it; a `reason` when an anchor of the right name refused it for a reason worth telling. */
async function signedByAnchor(
  certificate: CertificateView,
  anchors: readonly CertificateView[],
  now: Date,
  options: { validityDecidedByCaller?: boolean },
): Promise<AnchorCheck> {
  const checks = await Promise.all(anchors.map((anchor) => checkIssuedBy(certificate, anchor, now, options)));
  const index = checks.findIndex((check) => check.ok);
  if (index >= 0) return { ok: true, issuer: anchors[index]! };
  const named = checks.find((check) => !check.ok && !check.reason.startsWith('certificate was not issued'));
  return named && !named.ok ? { ok: false, reason: named.reason } : { ok: false };
}

/** Depth-first up the sent intermediates until one is signed by an anchor. */
async function climb(
  current: CertificateView,
  path: readonly CertificateView[],
  candidates: readonly CertificateView[],
  anchors: readonly CertificateView[],
  now: Date,
  options: { validityDecidedByCaller?: boolean },
): Promise<PathCheck | undefined> {
  if (path.length >= MAX_INTERMEDIATES) return undefined;
  let refusal: PathCheck | undefined;
  for (const intermediate of candidates) {
    if (path.includes(intermediate)) continue;
    // Only the client's own certificate may be outside its validity (renewal rules decide); never a CA above it.
    const signed = await checkIssuedBy(current, intermediate, now, path.length === 0 ? options : {});
    if (!signed.ok) {
      if (!signed.reason.startsWith('certificate was not issued')) refusal ??= { ok: false, reason: signed.reason };
      continue;
    }
    const up = [...path, intermediate];
    const anchored = await signedByAnchor(intermediate, anchors, now, {});
    if (anchored.ok) return { ok: true, issuer: up[0]! };
    if (anchored.reason !== undefined) {
      refusal ??= { ok: false, reason: `intermediate CA ${intermediate.subject}: ${anchored.reason}` };
      continue;
    }
    const higher = await climb(intermediate, up, candidates, anchors, now, options);
    if (higher?.ok) return higher;
    refusal ??= higher;
  }
  return refusal;
}

/** basicConstraints cA, and keyCertSign where there is a keyUsage (RFC 5280 §4.2.1.3, §4.2.1.9). */
function isCa(certificate: CertificateView): boolean {
  return certificate.isCa() && certificate.keyUsage()?.keyCertSign !== false;
}

/** Parses a sent certificate once; null for one that does not parse (it is then simply not a candidate). */
function parseOnce(der: Buffer): CertificateView | null {
  const key = createHash('sha256').update(der).digest('hex');
  let certificate = parsed.get(key);
  if (certificate === undefined) {
    try {
      certificate = CertificateView.parse(der);
    } catch {
      certificate = null;
    }
    if (parsed.size >= PARSED_CACHE_LIMIT) parsed.delete(parsed.keys().next().value!);
    parsed.set(key, certificate);
  }
  return certificate;
}
