import { readFileSync, statSync } from 'node:fs';
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import axios from 'axios';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { bytes, x509 } from '../pki/x509.js';
import type { CertificateView } from '../pki/certificate-view.js';
import { decodeDerBody } from '../pki/der-body.js';

pkijs.setEngine('node', new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto }));

/** off · soft_fail (log, count, allow when the status is unknown) · hard_fail (refuse when unknown). */
export type RevocationMode = 'off' | 'soft_fail' | 'hard_fail';

export interface RevocationSettings {
  readonly mode: RevocationMode;
  /** CRL files (PEM or DER), re-read when they change on disk. */
  readonly crlFiles: readonly string[];
  /** Fetch the CRL named in the certificate's CRL distribution points (HTTP). */
  readonly useCrlDistributionPoints: boolean;
  /** Ask OCSP: this responder, or the one in the certificate's authority information access. */
  readonly ocsp: { readonly enabled: boolean; readonly responderUrl?: string };
  readonly timeoutMs: number;
}

export type RevocationStatus =
  | { readonly status: 'good'; readonly source: string }
  | { readonly status: 'revoked'; readonly source: string }
  | { readonly status: 'unknown'; readonly reason: string };

const ID_NONCE = '1.3.6.1.5.5.7.48.1.2';
/** An answer without nextUpdate is kept this long. */
const DEFAULT_CACHE_MS = 5 * 60_000;

interface CachedCrl {
  readonly crl: x509.X509Crl;
  /** For files: the modification time it was read at. */
  readonly mtimeMs?: number;
}

/**
 * Revocation of bootstrap and renewal certificates (RFC 5280 §6.3 CRLs,
 * RFC 6960 OCSP). OCSP first, with a nonce, then CRLs (files, then
 * distribution points); every answer is verified against the issuing CA and
 * cached until its nextUpdate. A CRL or OCSP answer that is stale, unsigned
 * by the CA, or unreachable makes the status unknown; the caller's mode
 * decides what unknown means.
 */
export class RevocationChecker {
  private readonly crls = new Map<string, CachedCrl>();
  private readonly ocspAnswers = new Map<string, { status: 'good' | 'revoked'; url: string; until: number }>();

  constructor(
    private readonly settings: RevocationSettings,
    private readonly now: () => Date,
  ) {}

  get mode(): RevocationMode {
    return this.settings.mode;
  }

  async check(certificate: CertificateView, issuer: CertificateView): Promise<RevocationStatus> {
    const reasons: string[] = [];
    if (this.settings.ocsp.enabled) {
      const cached = this.ocspAnswers.get(ocspCacheKey(certificate, issuer));
      if (cached && cached.until >= this.now().getTime()) return { status: cached.status, source: `OCSP ${cached.url} (cached)` };
      const url = this.settings.ocsp.responderUrl ?? ocspUrlOf(certificate, reasons);
      if (url) {
        try {
          return await this.ocsp(url, certificate, issuer);
        } catch (err) {
          reasons.push(`OCSP ${url}: ${message(err)}`);
        }
      } else reasons.push('no OCSP responder');
    }
    const sources = [...this.settings.crlFiles, ...(this.settings.useCrlDistributionPoints ? crlUrlsOf(certificate, reasons) : [])];
    for (const source of sources) {
      try {
        const crl = await this.crl(source, issuer);
        const revoked = crl.findRevoked(certificate.serialNumber) !== null;
        return { status: revoked ? 'revoked' : 'good', source: `CRL ${source}` };
      } catch (err) {
        reasons.push(`CRL ${source}: ${message(err)}`);
      }
    }
    if (sources.length === 0 && !this.settings.ocsp.enabled) reasons.push('no CRL configured');
    return { status: 'unknown', reason: reasons.join('; ') || 'no revocation source' };
  }

  /** A verified, current CRL from a file or URL, from the cache while it is fresh. */
  private async crl(source: string, issuer: CertificateView): Promise<x509.X509Crl> {
    const isUrl = /^https?:\/\//.test(source);
    const mtimeMs = isUrl ? undefined : statSync(source).mtimeMs;
    const cached = this.crls.get(source);
    const now = this.now();
    if (cached && cached.mtimeMs === mtimeMs && (!cached.crl.nextUpdate || cached.crl.nextUpdate >= now)) return cached.crl;
    const raw = isUrl ? await this.fetch(source) : readFileSync(source);
    const crl = new x509.X509Crl(bytes(decodeDerBody(raw)));
    if (!Buffer.from(crl.issuerName.toArrayBuffer()).equals(issuer.subjectDer)) throw new Error('issued by another CA');
    if (!(await crl.verify({ publicKey: issuer.x509.publicKey }))) throw new Error('signature does not verify against the CA');
    if (crl.nextUpdate && crl.nextUpdate < now) throw new Error(`stale: nextUpdate ${crl.nextUpdate.toISOString()}`);
    this.crls.set(source, { crl, mtimeMs });
    return crl;
  }

  /** RFC 6960 request with a nonce; the answer must be signed by the CA or its delegated responder and be current. */
  private async ocsp(url: string, certificate: CertificateView, issuer: CertificateView): Promise<RevocationStatus> {
    const now = this.now();
    const subject = pkijs.Certificate.fromBER(bytes(certificate.der));
    const ca = pkijs.Certificate.fromBER(bytes(issuer.der));
    const request = new pkijs.OCSPRequest();
    await request.createForCertificate(subject, { hashAlgorithm: 'SHA-1', issuerCertificate: ca });
    const nonce = randomBytes(16);
    request.tbsRequest.requestExtensions = [
      new pkijs.Extension({ extnID: ID_NONCE, extnValue: new asn1js.OctetString({ valueHex: bytes(nonce) }).toBER(false) }),
    ];
    const answer = await this.fetch(url, Buffer.from(request.toSchema(true).toBER(false)));
    const response = pkijs.OCSPResponse.fromBER(bytes(answer));
    if (response.responseStatus.valueBlock.valueDec !== 0) throw new Error(`responder status ${response.responseStatus.valueBlock.valueDec}`);
    if (!response.responseBytes) throw new Error('no response bytes');
    const basic = pkijs.BasicOCSPResponse.fromBER(bytes(response.responseBytes.response.valueBlock.valueHexView));
    if (!(await basic.verify({ trustedCerts: [ca] }))) throw new Error('answer not signed by the CA or its responder');
    const echoed = basic.tbsResponseData.responseExtensions?.find((e) => e.extnID === ID_NONCE);
    if (echoed && !Buffer.from(echoed.extnValue.valueBlock.valueHexView).includes(nonce)) throw new Error('nonce mismatch (replayed answer?)');
    const single = basic.tbsResponseData.responses.find((r) =>
      Buffer.from(r.certID.serialNumber.valueBlock.valueHexView).equals(Buffer.from(subject.serialNumber.valueBlock.valueHexView)),
    );
    if (!single) throw new Error('no answer for this certificate');
    if (single.nextUpdate && single.nextUpdate < now) throw new Error(`stale: nextUpdate ${single.nextUpdate.toISOString()}`);
    const { status } = await basic.getCertificateStatus(subject, ca);
    if (status === 2) return { status: 'unknown', reason: `OCSP ${url}: responder does not know the certificate` };
    const verdict = status === 1 ? 'revoked' : 'good';
    this.ocspAnswers.set(ocspCacheKey(certificate, issuer), { status: verdict, url, until: single.nextUpdate?.getTime() ?? now.getTime() + DEFAULT_CACHE_MS });
    return { status: verdict, source: `OCSP ${url}` };
  }

  private async fetch(url: string, ocspRequest?: Buffer): Promise<Buffer> {
    const response = await axios.request<ArrayBuffer>({
      url,
      method: ocspRequest ? 'POST' : 'GET',
      data: ocspRequest,
      headers: ocspRequest ? { 'Content-Type': 'application/ocsp-request' } : {},
      responseType: 'arraybuffer',
      timeout: this.settings.timeoutMs,
      maxContentLength: 16 * 1024 * 1024,
      proxy: false,
    });
    return Buffer.from(response.data);
  }
}

const issuerKeyHashes = new WeakMap<CertificateView, string>();

/** An answer is about one serial number of one issuing key (RFC 6960 CertID): serials alone repeat across CAs. */
function ocspCacheKey(certificate: CertificateView, issuer: CertificateView): string {
  let keyHash = issuerKeyHashes.get(issuer);
  if (keyHash === undefined) {
    keyHash = createHash('sha256').update(issuer.subjectPublicKeyInfo).digest('base64');
    issuerKeyHashes.set(issuer, keyHash);
  }
  return `${keyHash}/${certificate.serialNumber}`;
}

/**
 * The OCSP responder named in the certificate (authorityInfoAccess, RFC 5280
 * §4.2.2.1). A malformed extension names none, and says so in `reasons`:
 * the status is then unknown (the mode decides), never a 500.
 */
function ocspUrlOf(certificate: CertificateView, reasons: string[]): string | undefined {
  try {
    const der = certificate.extension('1.3.6.1.5.5.7.1.1');
    const aia = der && new x509.AuthorityInfoAccessExtension(bytes(der));
    return aia?.ocsp.find((name) => name.type === 'url')?.value;
  } catch {
    reasons.push('malformed authorityInfoAccess extension');
    return undefined;
  }
}

/** The HTTP CRL distribution points (RFC 5280 §4.2.1.13); none from a malformed extension, said in `reasons`. */
function crlUrlsOf(certificate: CertificateView, reasons: string[]): string[] {
  try {
    const der = certificate.extension('2.5.29.31');
    const points = der && new x509.CRLDistributionPointsExtension(bytes(der));
    return (points?.distributionPoints ?? []).flatMap((point) =>
      (point.distributionPoint?.fullName ?? []).flatMap((name) =>
        name.uniformResourceIdentifier && /^https?:\/\//.test(name.uniformResourceIdentifier) ? [name.uniformResourceIdentifier] : [],
      ),
    );
  } catch {
    reasons.push('malformed cRLDistributionPoints extension');
    return [];
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
