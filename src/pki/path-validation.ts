import { createHash, webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { CertificateView } from './certificate-view.js';
import { issuerKey, verifyWithNode } from './signature.js';
import { bytes } from './x509.js';

/**
 * Certification path validation (RFC 5280 §6.1) by pkijs's
 * CertificateChainValidationEngine, for every certificate est-ra relies on:
 * bootstrap and manufacturer certificates, the certificate being renewed,
 * downstream RA certificates, and the upstream's answers.
 *
 * Why pkijs and not OpenSSL through the TLS handshake, which costs nothing
 * more (it already runs against the `ca` list of server.ts): the handshake
 * verifies once against the union of every profile's anchors, at the wall
 * clock, and reports one error code, the last one, so an expired leaf (which
 * renewal may accept) hides an expired intermediate or an exceeded pathLen;
 * Node 20 does not expose the chain it verified, so which policy's anchor it
 * reached is unknown; and OpenSSL 3.0 refused the cross-signed path of the
 * tests (UNABLE_TO_GET_ISSUER_CERT_LOCALLY: it does not look past an
 * untrusted intermediate whose issuer is missing). Here each policy has its
 * own anchors, the clock is the request's, and the client certificate's own
 * validity can be left to renewal_settings while every CA's stays checked.
 * The price: ~0.45 ms more CPU per validation than the signature check it
 * replaces, nearly all of it pkijs parsing the client certificate.
 *
 * What pkijs 3.4 enforces: signatures along the path, validity of every
 * certificate at `now`, basicConstraints cA and keyCertSign on every CA
 * (anchor included), name chaining, certificate policies, and name
 * constraints of the intermediates. What it does not, and this module adds
 * through its hooks or on the path it returns: pathLenConstraint (§6.1.4
 * (l)-(m)); unrecognised critical extensions on every certificate (§6.1.4
 * (o), §6.1.5 (f)); the anchor's own name constraints, given as the initial
 * permitted/excluded subtrees (§6.1.1 (b)-(c)), as OpenSSL applies them; a
 * bound on path building (its search has no cycle check: two CAs that
 * certify each other, sent by a client, kept it busy forever in a test); and
 * a search that goes on past a dead end (the cross-signed case above).
 * Known limit: pkijs joins the permitted subtrees of two constrained CAs on
 * one path instead of intersecting them.
 */

/** Why a path was refused; the caller words it for its client. */
export type PathFailureCode =
  | 'no_path'
  | 'expired'
  | 'not_yet_valid'
  | 'not_a_ca'
  | 'no_key_cert_sign'
  | 'path_length'
  | 'name_constraints'
  | 'critical_extension'
  | 'malformed'
  | 'invalid';

export type PathValidation =
  | {
      readonly ok: true;
      /** The certificate, the CAs above it, and the trust anchor last. */
      readonly path: readonly CertificateView[];
      /** The certificate that signed it (path[1]): revocation is checked against it. */
      readonly issuer: CertificateView;
    }
  | { readonly ok: false; readonly code: PathFailureCode; readonly reason: string };

export interface PathInput {
  /** The end-entity certificate. */
  readonly certificate: CertificateView;
  /** Trust anchors: every configured certificate is one, an intermediate too (an admin pastes "the issuing CAs"). */
  readonly anchors: readonly CertificateView[];
  /** Untrusted certificates that may complete the path (the TLS Certificate message, a certs-only answer). */
  readonly intermediates?: readonly Buffer[];
  /** The request's time: validity is checked at it. */
  readonly now: Date;
  /** Renewal: the certificate's own validity is decided by renewal_settings, never a CA's. */
  readonly validityDecidedByCaller?: boolean;
}

/**
 * Extensions this validator processes (pkijs or the checks here), as
 * OpenSSL's X509_supported_extension lists them; any other critical
 * extension refuses the path (RFC 5280 §4.2: "MUST reject").
 */
const PROCESSED_EXTENSIONS = new Set([
  '2.5.29.15', // keyUsage
  '2.5.29.17', // subjectAltName
  '2.5.29.19', // basicConstraints
  '2.5.29.30', // nameConstraints
  '2.5.29.32', // certificatePolicies
  '2.5.29.33', // policyMappings
  '2.5.29.36', // policyConstraints
  '2.5.29.37', // extKeyUsage (the caller checks the leaf's)
  '2.5.29.54', // inhibitAnyPolicy
]);
const ID_NAME_CONSTRAINTS = '2.5.29.30';
const ID_BASIC_CONSTRAINTS = '2.5.29.19';
const ID_KEY_USAGE = '2.5.29.15';

/** Intermediates considered from one client: real PKIs use one or two. */
const MAX_INTERMEDIATES = 8;
/** Issuer look-ups per validation, each a signature check: bounds path building over crafted cross-certificates. */
const FIND_ISSUER_BUDGET = 16;
/** Intermediates parsed once and kept by their DER: every device of a line sends the same ones. */
const PARSED_CACHE_LIMIT = 256;

/** pkijs objects and the views they were made from. */
const viewOfCertificate = new WeakMap<pkijs.Certificate, CertificateView>();
const viewOfKey = new WeakMap<pkijs.PublicKeyInfo, CertificateView>();
const parsedAnchors = new WeakMap<CertificateView, pkijs.Certificate | null>();
const parsedIntermediates = new Map<string, pkijs.Certificate | null>();

/**
 * pkijs's crypto, with signatures of the usual algorithms checked by
 * node:crypto and keys imported once per CA: pkijs's WebCrypto import of the
 * issuer's key on every check was ~0.25 ms of each validation (CPU profile),
 * the larger part of it. Anything else (RSA-PSS) goes to pkijs.
 */
class NodeCryptoEngine extends pkijs.CryptoEngine {
  override verifyWithPublicKey(
    data: BufferSource,
    signature: asn1js.BitString | asn1js.OctetString,
    publicKeyInfo: pkijs.PublicKeyInfo,
    signatureAlgorithm: pkijs.AlgorithmIdentifier,
    shaAlgorithm?: string,
  ): Promise<boolean> {
    const signer = viewOfKey.get(publicKeyInfo);
    const tbs = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
    const fast = signer && verifyWithNode(signatureAlgorithm.algorithmId, tbs, signature.valueBlock.valueHexView, issuerKey(signer));
    return fast ?? super.verifyWithPublicKey(data, signature, publicKeyInfo, signatureAlgorithm, shaAlgorithm);
  }
}
const cryptoEngine = new NodeCryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto });

/** Paths validated, kept while every certificate on them stays within its validity. */
const VALIDATED_CACHE_LIMIT = 4096;
const validated = new Map<string, { readonly cas: readonly CertificateView[]; readonly validFrom: number; readonly validUntil: number }>();
const fingerprints = new WeakMap<CertificateView, string>();

/**
 * Validates the path from `input.certificate` to one of `input.anchors`.
 * Never throws for a bad certificate: the result says why, with a code.
 *
 * A path that validated is remembered by the exact input (the certificate,
 * the intermediates offered, the anchors, whether the leaf's own dates
 * count) for as long as every certificate on it is within its validity: the
 * engine's verdict is a function of those bytes and of the time, and the
 * time enters only through those validity periods, so the remembered answer
 * is the engine's answer. A downstream RA presents the same certificate on
 * every request, a device polling after 202 on every poll; a device's first
 * request pays the full validation (`npm run bench` breakdown).
 */
export async function validatePath(input: PathInput): Promise<PathValidation> {
  const key = cacheKey(input);
  const at = input.now.getTime();
  const hit = validated.get(key);
  if (hit && at >= hit.validFrom && at <= hit.validUntil) return { ok: true, path: [input.certificate, ...hit.cas], issuer: hit.cas[0]! };
  const result = await validatePathUncached(input);
  if (result.ok) {
    const dated = input.validityDecidedByCaller ? result.path.slice(1) : result.path;
    if (validated.size >= VALIDATED_CACHE_LIMIT) validated.delete(validated.keys().next().value!);
    validated.set(key, {
      cas: result.path.slice(1),
      validFrom: Math.max(...dated.map((c) => c.notBefore.getTime())),
      validUntil: Math.min(...dated.map((c) => c.notAfter.getTime())),
    });
  }
  return result;
}

function cacheKey(input: PathInput): string {
  const parts = [input.validityDecidedByCaller ? 'renewal' : 'full', fingerprint(input.certificate)];
  for (const der of input.intermediates ?? []) parts.push(createHash('sha256').update(der).digest('base64'));
  parts.push('|', ...input.anchors.map(fingerprint));
  return parts.join(' ');
}

function fingerprint(certificate: CertificateView): string {
  let value = fingerprints.get(certificate);
  if (value === undefined) {
    value = createHash('sha256').update(certificate.der).digest('base64');
    fingerprints.set(certificate, value);
  }
  return value;
}

/** The engine itself, every time: what a device's first request costs (the bench breakdown measures this). */
export async function validatePathUncached(input: PathInput): Promise<PathValidation> {
  const leaf = parse(input.certificate);
  if (!leaf) return refused('malformed', 'certificate cannot be read');
  if (input.validityDecidedByCaller) {
    // The engine checks every certificate's validity at checkDate. The leaf's
    // is the caller's, so its copy (parsed for this call only) is made to
    // span `now`; its signature is over the original bytes (tbsView), so this
    // changes nothing else.
    if (leaf.notBefore.value > input.now) leaf.notBefore = new pkijs.Time({ type: pkijs.TimeType.GeneralizedTime, value: input.now });
    if (leaf.notAfter.value < input.now) leaf.notAfter = new pkijs.Time({ type: pkijs.TimeType.GeneralizedTime, value: input.now });
  }
  // A certificate cannot anchor its own path (pkijs would drop it as a duplicate and validate another).
  const anchors = input.anchors.filter((anchor) => !anchor.der.equals(input.certificate.der)).flatMap((anchor) => parseAnchor(anchor) ?? []);
  // Node completes the sent chain from its trust store (router.ts sentChainOf): an anchor sent again is the anchor, not a second candidate to verify.
  const intermediates = (input.intermediates ?? [])
    .filter((der) => !der.equals(input.certificate.der) && !input.anchors.some((anchor) => anchor.der.equals(der)))
    .slice(0, MAX_INTERMEDIATES)
    .flatMap((der) => parseIntermediate(der) ?? []);

  let outcome = await runEngine(leaf, anchors, intermediates, input.now);
  if (!outcome.ok) return outcome.refusal;
  // The anchor's own name constraints, as the initial subtrees (RFC 5280 §6.1.1 (b)-(c)).
  const anchor = outcome.path.at(-1)!;
  const anchorConstraints = extensionValue(anchor, ID_NAME_CONSTRAINTS) as pkijs.NameConstraints | undefined;
  if (anchorConstraints) {
    outcome = await runEngine(leaf, [anchor], intermediates, input.now, anchorConstraints);
    if (!outcome.ok) return outcome.refusal;
  }
  const path = outcome.path;
  const beyondEngine = checkCriticalExtensions(path) ?? checkPathLength(path);
  if (beyondEngine) return beyondEngine;
  const views = path.map((certificate, index) => (index === 0 ? input.certificate : viewOfCertificate.get(certificate)!));
  return { ok: true, path: views, issuer: views[1]! };
}

type EngineOutcome = { ok: true; path: pkijs.Certificate[] } | { ok: false; refusal: PathValidation & { ok: false } };

async function runEngine(
  leaf: pkijs.Certificate,
  anchors: pkijs.Certificate[],
  intermediates: pkijs.Certificate[],
  now: Date,
  anchorConstraints?: pkijs.NameConstraints,
): Promise<EngineOutcome> {
  // Issuers each certificate was found to have (signature checked), to name what failed on the path pkijs chose.
  const issuersFound = new Map<pkijs.Certificate, pkijs.Certificate[]>();
  let budget = FIND_ISSUER_BUDGET;
  const engine = new pkijs.CertificateChainValidationEngine({
    trustedCerts: anchors,
    // pkijs takes the last certificate as the one to validate.
    certs: [...intermediates, leaf],
    checkDate: now,
    findIssuer: async (certificate) => {
      if (budget-- <= 0) return [certificate];
      const issuers = await issuersOf(certificate, [...anchors, ...intermediates], leaf);
      issuersFound.set(certificate, issuers);
      // pkijs gives up the whole search on a certificate without an issuer; a path that ends on itself is dropped instead.
      return issuers.length > 0 ? issuers : [certificate];
    },
  });
  let result: pkijs.CertificateChainValidationEngineVerifyResult;
  try {
    result = await engine.verify(
      {
        initialPermittedSubtreesSet: anchorConstraints?.permittedSubtrees ?? [],
        initialExcludedSubtreesSet: anchorConstraints?.excludedSubtrees ?? [],
      },
      cryptoEngine,
    );
  } catch (err) {
    // The engine catches its own errors; this is for anything it lets through, so a client never sees a 500.
    return { ok: false, refusal: refused('invalid', `path refused by the validator: ${err instanceof Error ? err.message : String(err)}`) };
  }
  const path = result.certificatePath;
  if (result.result && path && path[0] === leaf && path.length >= 2) return { ok: true, path };
  return { ok: false, refusal: explain(result, likelyPath(leaf, anchors, issuersFound), now) };
}

/**
 * The engine's findIssuer hook: the candidates whose subject is the
 * certificate's issuer name (RFC 5280 §6.1.3 (a)(4)), compared as DER, and
 * whose key verifies its signature. pkijs's own finder reads the authority
 * key identifier of every certificate for the same answer; reading names
 * from the views costs nothing (that parse was ~90 us of a validation).
 */
async function issuersOf(certificate: pkijs.Certificate, candidates: readonly pkijs.Certificate[], leaf: pkijs.Certificate): Promise<pkijs.Certificate[]> {
  const issuerName = viewOfCertificate.get(certificate)!.issuerDer;
  const named = candidates.filter((candidate) => candidate !== certificate && viewOfCertificate.get(candidate)!.subjectDer.equals(issuerName));
  const verified = await Promise.all(named.map((candidate) => (certificate === leaf ? signedBy(certificate, candidate) : caSignedBy(certificate, candidate))));
  return named.filter((_, index) => verified[index]);
}

function signedBy(certificate: pkijs.Certificate, issuer: pkijs.Certificate): Promise<boolean> {
  return certificate.verify(issuer, cryptoEngine).catch(() => false);
}

/**
 * Whether a CA certificate (an anchor or a cached intermediate: both objects
 * live as long as their caches) is signed by another, checked once: a
 * signature does not change, and every device of a line sends the same
 * intermediate (~0.1 ms per enrollment saved).
 */
const caSignatures = new WeakMap<pkijs.Certificate, WeakMap<pkijs.Certificate, Promise<boolean>>>();
function caSignedBy(certificate: pkijs.Certificate, issuer: pkijs.Certificate): Promise<boolean> {
  let byIssuer = caSignatures.get(certificate);
  if (!byIssuer) caSignatures.set(certificate, (byIssuer = new WeakMap()));
  let verified = byIssuer.get(issuer);
  if (!verified) byIssuer.set(issuer, (verified = signedBy(certificate, issuer)));
  return verified;
}

/**
 * The typed reason for a refusal of the engine. pkijs says what failed
 * (its result codes) but not on which certificate; the path it tried is
 * rebuilt from the issuers it found, and the certificate named is the first
 * on it that fails the same rule.
 */
function explain(
  result: pkijs.CertificateChainValidationEngineVerifyResult,
  path: readonly pkijs.Certificate[] | undefined,
  now: Date,
): PathValidation & { ok: false } {
  if (!path) return refused('no_path', 'no path to a trust anchor');
  switch (result.resultCode) {
    case 8: {
      const outside = path.find((c) => c.notBefore.value > now || c.notAfter.value < now);
      if (!outside) break;
      const expired = outside.notAfter.value < now;
      const when = expired
        ? `certificate expired ${outside.notAfter.value.toISOString()}`
        : `certificate is not valid before ${outside.notBefore.value.toISOString()}`;
      return refused(expired ? 'expired' : 'not_yet_valid', outside === path[0] ? when : `${roleOf(path, outside)} ${subjectOf(outside)}: ${when}`);
    }
    case 14:
      for (const ca of path.slice(1)) {
        const unknown = unknownCriticalExtension(ca);
        if (unknown) return refused('critical_extension', `${roleOf(path, ca)} ${subjectOf(ca)}: unknown critical extension ${unknown}`);
        if ((extensionValue(ca, ID_BASIC_CONSTRAINTS) as pkijs.BasicConstraints | undefined)?.cA !== true)
          return refused('not_a_ca', `${roleOf(path, ca)} ${subjectOf(ca)} is not a CA (basicConstraints)`);
        const usage = extensionValue(ca, ID_KEY_USAGE) as asn1js.BitString | undefined;
        if (usage && (usage.valueBlock.valueHexView[0]! & 0x04) === 0)
          return refused('no_key_cert_sign', `${roleOf(path, ca)} ${subjectOf(ca)} may not sign certificates (keyUsage without keyCertSign)`);
      }
      break;
    case 41:
      return refused('name_constraints', `a name on the path is outside the permitted subtrees of a CA's name constraints`);
    case 42:
      return refused('name_constraints', `a name on the path is in the excluded subtrees of a CA's name constraints`);
  }
  // Rarer refusals (e.g. certificate policies, RFC 5280 §6.1.4 (i)): the engine's own words.
  return refused('invalid', `path refused by the validator: ${result.resultMessage} (code ${result.resultCode})`);
}

/** The shortest chain of found issuers from the leaf to an anchor: what pkijs chose, as it takes the shortest. */
function likelyPath(
  leaf: pkijs.Certificate,
  anchors: readonly pkijs.Certificate[],
  issuersFound: ReadonlyMap<pkijs.Certificate, pkijs.Certificate[]>,
): pkijs.Certificate[] | undefined {
  let paths: pkijs.Certificate[][] = [[leaf]];
  for (let depth = 0; depth <= MAX_INTERMEDIATES && paths.length > 0; depth++) {
    const done = paths.find((path) => anchors.includes(path.at(-1)!) && path.length > 1);
    if (done) return done;
    paths = paths.flatMap((path) => (issuersFound.get(path.at(-1)!) ?? []).filter((issuer) => !path.includes(issuer)).map((issuer) => [...path, issuer]));
  }
  return undefined;
}

/** RFC 5280 §6.1.4 (o), §6.1.5 (f): a critical extension the validator does not process refuses the path. */
function checkCriticalExtensions(path: readonly pkijs.Certificate[]): (PathValidation & { ok: false }) | undefined {
  for (const certificate of path) {
    const unknown = unknownCriticalExtension(certificate);
    if (unknown) {
      const who = certificate === path[0] ? 'certificate' : `${roleOf(path, certificate)} ${subjectOf(certificate)}`;
      return refused('critical_extension', `${who}: unknown critical extension ${unknown}`);
    }
  }
  return undefined;
}

/**
 * RFC 5280 §6.1.4 (l)-(m): a CA's pathLenConstraint bounds the non-self-issued
 * intermediate CAs below it. Checked on the anchor too, as OpenSSL does.
 */
function checkPathLength(path: readonly pkijs.Certificate[]): (PathValidation & { ok: false }) | undefined {
  let below = 0;
  for (const ca of path.slice(1)) {
    const limit = (extensionValue(ca, ID_BASIC_CONSTRAINTS) as pkijs.BasicConstraints | undefined)?.pathLenConstraint;
    // An integer too large for a number (asn1js keeps it as hex) bounds nothing.
    if (typeof limit === 'number' && below > limit) {
      return refused(
        'path_length',
        `${roleOf(path, ca)} ${subjectOf(ca)} allows ${limit} intermediate CA(s) below it (pathLenConstraint), the path has ${below}`,
      );
    }
    if (!ca.subject.isEqual(ca.issuer)) below++;
  }
  return undefined;
}

function unknownCriticalExtension(certificate: pkijs.Certificate): string | undefined {
  return certificate.extensions?.find((extension) => extension.critical && !PROCESSED_EXTENSIONS.has(extension.extnID))?.extnID;
}

/** pkijs's parsed value of an extension (its type is the OID's), or undefined without it. */
function extensionValue(certificate: pkijs.Certificate, oid: string): unknown {
  return certificate.extensions?.find((extension) => extension.extnID === oid)?.parsedValue;
}

function roleOf(path: readonly pkijs.Certificate[], certificate: pkijs.Certificate): string {
  return certificate === path.at(-1) ? 'trust anchor' : 'intermediate CA';
}

function subjectOf(certificate: pkijs.Certificate): string {
  const view = viewOfCertificate.get(certificate);
  return view ? view.subject : 'unknown';
}

function refused(code: PathFailureCode, reason: string): PathValidation & { ok: false } {
  return { ok: false, code, reason };
}

/** pkijs's parse of a view, linked back to it; null when pkijs cannot read it. */
function parse(view: CertificateView): pkijs.Certificate | null {
  try {
    // asn1js by default also tries every OCTET STRING and BIT STRING as nested DER (the extension values, the key, the
    // signature); pkijs reads those itself where it needs them, and skipping the guess is ~20% of the parse.
    const asn1 = asn1js.fromBER(bytes(view.der), { parseEmbedded: false, copyInput: false });
    if (asn1.offset === -1) return null;
    const certificate = new pkijs.Certificate({ schema: asn1.result });
    viewOfCertificate.set(certificate, view);
    viewOfKey.set(certificate.subjectPublicKeyInfo, view);
    return certificate;
  } catch {
    return null;
  }
}

/** Anchors are long-lived (configuration, the profile's CA): parsed once per view. */
function parseAnchor(view: CertificateView): pkijs.Certificate | null {
  let certificate = parsedAnchors.get(view);
  if (certificate === undefined) {
    certificate = parse(view);
    parsedAnchors.set(view, certificate);
  }
  return certificate;
}

/** A sent certificate, parsed once by its DER; null for one that does not parse (it is then simply not a candidate). */
function parseIntermediate(der: Buffer): pkijs.Certificate | null {
  const key = createHash('sha256').update(der).digest('hex');
  let certificate = parsedIntermediates.get(key);
  if (certificate === undefined) {
    let view: CertificateView | undefined;
    try {
      view = CertificateView.parse(der);
    } catch {
      view = undefined;
    }
    certificate = view ? parse(view) : null;
    if (parsedIntermediates.size >= PARSED_CACHE_LIMIT) parsedIntermediates.delete(parsedIntermediates.keys().next().value!);
    parsedIntermediates.set(key, certificate);
  }
  return certificate;
}
