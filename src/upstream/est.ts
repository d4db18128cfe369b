import { Agent } from 'node:https';
import { createSecureContext } from 'node:tls';
import axios, { AxiosError, type AxiosInstance, type AxiosResponse } from 'axios';
import { EstError } from '../errors.js';
import { decodeDerBody, encodeBase64Body } from '../pki/der-body.js';
import type { TLSSocket } from 'node:tls';
import { parseCertsOnly } from '../pki/certs-only.js';
import type { VerifiedCsr } from '../pki/csr.js';
import { bytes, x509 } from '../pki/x509.js';
import type { Store } from '../store/types.js';
import type { Logger } from '../ops/logger.js';
import { LOG_EVENT } from '../ops/log-events.js';
import { UpstreamUnavailableError, type FullCmcRoute, type IssuedCertificate, type Upstream } from './types.js';
import { verifyIssued } from './verify-issued.js';
import { identityOf } from '../pki/identity.js';
import { CertificateView } from '../pki/certificate-view.js';
import type { SignatureAlgorithmName } from '../pki/certificate-signer.js';
import { whatIsWrong } from '../pki/der.js';
import type { RaIdentity } from './ra-identity.js';

/** How est-ra reaches one upstream RFC 7030 server, as the profile configures it (files already read). */
export interface EstUpstreamOptions {
  /** Base URL including the upstream's label path, e.g. https://host/.well-known/est/devicetrustmanager/IOT_x/device-group/g */
  readonly url: string;
  /** est-ra's RA identity for TLS client authentication (ra-identity.ts). */
  readonly identity: RaIdentity;
  /** Trust anchors for the upstream's TLS certificate. */
  readonly trustAnchors: readonly Buffer[];
  /** HTTP Basic towards the upstream; without a username the bare passcode is sent, as DigiCert documents. */
  readonly basic?: { readonly username?: string; readonly passcode: string };
  readonly timeoutMs: number;
  readonly maxSockets: number;
  /** Which upstream operation a device's simplereenroll becomes. */
  readonly reenrollOperation: 'simplereenroll' | 'simpleenroll';
  readonly cacertsRefreshMs: number;
  /** The profile's signature_algorithm list: an issued certificate signed otherwise is refused (undefined: match_issuer). */
  readonly signatureAlgorithms?: readonly SignatureAlgorithmName[];
}

const CACHE_KEY = (profile: string): string => `cacerts:${profile}`;
const REFETCH_AFTER_FAILURE_MS = 10_000;

/**
 * An upstream RFC 7030 server (DigiCert ONE Device Trust Manager, DigiCert
 * PKI Platform, another est-ra, ...) reached over est-ra's own authenticated
 * TLS link with keep-alive. Every answer is checked (verify-issued.ts) before
 * a device sees it. /cacerts is fetched, verified, cached in memory and in
 * the store, and refreshed; devices keep getting the cached set while the
 * upstream is down.
 */
export class EstUpstream implements Upstream {
  private readonly http: AxiosInstance;
  private agent: Agent;
  private identity: RaIdentity;
  private cachedCaCertificates: readonly x509.X509Certificate[] = [];
  private refreshTimer?: NodeJS.Timeout;
  /** A dry run (`est-ra simulate`): the stored /cacerts only, never a fetch. */
  private offline = false;
  /** With nothing cached, callers fail fast for a while after a failed fetch instead of each waiting for a timeout. */
  private lastRefreshFailure?: { at: number; error: unknown };
  private readonly closers: (() => void)[] = [];

  constructor(
    private readonly profile: string,
    private readonly options: EstUpstreamOptions,
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly now: () => Date,
  ) {
    this.identity = options.identity;
    this.agent = this.agentFor(options.identity);
    const authorization = options.basic && basicHeader(options.basic);
    this.http = axios.create({
      baseURL: options.url.replace(/\/+$/, ''),
      httpsAgent: this.agent,
      timeout: options.timeoutMs,
      responseType: 'arraybuffer',
      // A certs-only answer is a few KB; a runaway upstream must not fill memory.
      maxContentLength: 1024 * 1024,
      maxRedirects: 0,
      // Every status is an answer to interpret here, not an exception.
      validateStatus: () => true,
      headers: authorization ? { Authorization: authorization } : {},
      proxy: false,
    });
  }

  /** A keep-alive agent presenting `identity`; fails now, naming the profile, rather than at every connection. */
  private agentFor(identity: RaIdentity): Agent {
    const tlsOptions = { ca: [...this.options.trustAnchors], ...identity.tls };
    try {
      createSecureContext(tlsOptions);
    } catch (err) {
      throw new Error(`profiles.${this.profile}.est: cannot load the RA identity or trust anchors: ${err instanceof Error ? err.message : String(err)}`);
    }
    return new Agent({ keepAlive: true, maxSockets: this.options.maxSockets, ...tlsOptions });
  }

  raCertificate(): { subject: string; notBefore: Date; notAfter: Date } {
    const certificate = this.identity.certificate;
    return { subject: certificate.subject.replace(/\n/g, ', '), notBefore: new Date(certificate.validFrom), notAfter: new Date(certificate.validTo) };
  }

  /** The RA identity in use. */
  currentIdentity(): RaIdentity {
    return this.identity;
  }

  /**
   * Presents `identity` from the next connection on, without a restart.
   * Requests on the old connections finish; those connections close after
   * the upstream timeout.
   */
  useIdentity(identity: RaIdentity): void {
    const previous = this.agent;
    this.agent = this.agentFor(identity);
    this.identity = identity;
    this.http.defaults.httpsAgent = this.agent;
    setTimeout(() => previous.destroy(), this.options.timeoutMs).unref();
  }

  /**
   * est-ra's own renewal (RFC 7030 §4.2.2): /simplereenroll with the current
   * RA certificate on the TLS link; the answer must hold a certificate for
   * the new key, with the same identity, chained to the upstream's CAs.
   */
  async reenrollRaCertificate(csrDer: Buffer, subjectPublicKeyInfo: Buffer): Promise<IssuedCertificate> {
    const answer = await this.call('post', 'simplereenroll', { der: csrDer });
    return verifyIssued(answer, {
      subjectPublicKeyInfo,
      caCertificates: await this.caCertificates(),
      identity: identityOf(CertificateView.parse(this.identity.certificate.raw)),
      now: this.now(),
    });
  }

  /**
   * Loads the stored /cacerts and fetches a fresh one, waiting for it only
   * when nothing is stored (an upstream that is down delays nothing else),
   * then schedules refreshes.
   */
  async start(): Promise<void> {
    const stored = await this.loadCached();
    const refresh = (): Promise<void> =>
      this.refreshCaCertificates().catch((err: unknown) => {
        this.logger.warn(LOG_EVENT.upstreamUnavailable, {
          profile: this.profile,
          operation: 'cacerts',
          error: describe(err),
          cached: this.cachedCaCertificates.length,
        });
      });
    if (stored) void refresh();
    else await refresh();
    this.refreshTimer = setInterval(() => void refresh(), this.options.cacertsRefreshMs);
    this.refreshTimer.unref();
  }

  /**
   * The /cacerts stored at the last fetch, if any, as the CA certificates.
   * `offline` (`est-ra simulate`): these only, the upstream is never asked.
   */
  async loadCached(options: { readonly offline?: boolean } = {}): Promise<boolean> {
    this.offline = options.offline ?? false;
    const stored = await this.store.getCached(CACHE_KEY(this.profile));
    if (stored) this.cachedCaCertificates = parseCertificates(stored);
    return stored !== undefined;
  }

  /** Runs `stop` when the upstream closes (a reload replaces it, or est-ra stops): its RA certificate renewer. */
  onClose(stop: () => void): void {
    this.closers.push(stop);
  }

  close(): void {
    clearInterval(this.refreshTimer);
    for (const stop of this.closers) stop();
    this.agent.destroy();
  }

  async caCertificates(): Promise<readonly x509.X509Certificate[]> {
    if (this.cachedCaCertificates.length === 0) {
      if (this.offline)
        throw new UpstreamUnavailableError('no /cacerts of the upstream stored yet, and a dry run does not fetch it', { mayHaveReachedUpstream: false });
      const failure = this.lastRefreshFailure;
      if (failure && this.now().getTime() - failure.at < REFETCH_AFTER_FAILURE_MS) throw failure.error;
      await this.refreshCaCertificates();
    }
    return this.cachedCaCertificates;
  }

  /** GET /cacerts (RFC 7030 §4.1), remembering a failure. */
  private async refreshCaCertificates(): Promise<void> {
    try {
      await this.fetchCaCertificates();
      this.lastRefreshFailure = undefined;
    } catch (error) {
      this.lastRefreshFailure = { at: this.now().getTime(), error };
      throw error;
    }
  }

  /** Every certificate must be a CA certificate valid now. */
  private async fetchCaCertificates(): Promise<void> {
    const body = await this.call('get', 'cacerts');
    const certificates = parseCertificates(body);
    const now = this.now();
    const bad = certificates.find((c) => !c.getExtension(x509.BasicConstraintsExtension)?.ca || now > c.notAfter || now < c.notBefore);
    if (certificates.length === 0 || bad)
      throw new EstError('EST_UPSTREAM_INVALID', {
        reason: `upstream /cacerts rejected: ${bad ? `${bad.subject} is not a valid CA certificate` : 'no certificates'}`,
      });
    this.cachedCaCertificates = certificates;
    await this.store.putCached(CACHE_KEY(this.profile), body, now);
  }

  async simpleEnroll(csr: VerifiedCsr): Promise<IssuedCertificate> {
    const answer = await this.call('post', 'simpleenroll', csr);
    return verifyIssued(answer, {
      subjectPublicKeyInfo: csr.subjectPublicKeyInfo,
      caCertificates: await this.caCertificates(),
      signatureAlgorithms: this.options.signatureAlgorithms,
      now: this.now(),
    });
  }

  async simpleReenroll(current: CertificateView | undefined, csr: VerifiedCsr): Promise<IssuedCertificate> {
    const answer = await this.call('post', this.options.reenrollOperation, csr);
    return verifyIssued(answer, {
      subjectPublicKeyInfo: csr.subjectPublicKeyInfo,
      caCertificates: await this.caCertificates(),
      identity: current && identityOf(current),
      signatureAlgorithms: this.options.signatureAlgorithms,
      now: this.now(),
    });
  }

  /** /fullcmc at the upstream, over the current RA identity (after a renewal too). */
  fullCmcRoute(): FullCmcRoute {
    return {
      url: `${this.options.url.replace(/\/+$/, '')}/fullcmc`,
      agent: this.agent,
      authorization: this.options.basic && basicHeader(this.options.basic),
      timeoutMs: this.options.timeoutMs,
    };
  }

  /** GET /csrattrs: the upstream's attributes, or undefined when it asks for none (204/404). */
  async csrAttrs(): Promise<Buffer | undefined> {
    try {
      return await this.call('get', 'csrattrs');
    } catch (err) {
      if (err instanceof EstError && err.code === 'EST_UPSTREAM_REFUSED') return undefined;
      throw err;
    }
  }

  /**
   * One RFC 7030 request. Answers are turned into est-ra's vocabulary:
   * 200 → the decoded DER body · 204 → empty · 202 → EstError.pending ·
   * 401 to a CSR with a challengePassword from an RA without id-kp-cmcRA →
   * EST_UPSTREAM_POP · other 401/403 → EST_UPSTREAM_AUTH (est-ra's own
   * credentials) · 408/429/5xx and network failures →
   * UpstreamUnavailableError · other 4xx → EST_UPSTREAM_REFUSED.
   */
  private async call(
    method: 'get' | 'post',
    operation: string,
    csr?: Pick<VerifiedCsr, 'der'> & Partial<Pick<VerifiedCsr, 'challengePassword'>>,
  ): Promise<Buffer> {
    let response: AxiosResponse<ArrayBuffer>;
    try {
      response =
        method === 'get'
          ? await this.http.get<ArrayBuffer>(`/${operation}`)
          : // 64-column lines: an OpenSSL-based upstream (libest's estserver) reads a
            // first line of at most 1024 characters and refuses longer CSRs with 400.
            await this.http.post<ArrayBuffer>(`/${operation}`, encodeBase64Body(csr!.der, 'wrapped'), { headers: { 'Content-Type': 'application/pkcs10' } });
    } catch (err) {
      throw new UpstreamUnavailableError(`upstream ${operation}: ${describe(err)}`, { cause: err, mayHaveReachedUpstream: !failedBeforeSending(err) });
    }
    const body = Buffer.from(response.data);
    const status = response.status;
    if (status === 200) {
      try {
        return decodeDerBody(withoutTrailingNuls(body));
      } catch (cause) {
        throw new EstError('EST_UPSTREAM_INVALID', { reason: `upstream ${operation} answer is not base64 DER`, cause });
      }
    }
    if (status === 204) return Buffer.alloc(0);
    const said = firstLine(body);
    if (status === 202)
      throw EstError.pending(
        retryAfterSeconds(response.headers['retry-after'], this.now()),
        `the upstream CA has not issued the certificate yet${said ? `: ${said}` : ''}`,
      );
    if (status === 401 && csr?.challengePassword !== undefined && !presentedCmcRa(response)) {
      this.logger.error(LOG_EVENT.upstreamPopRefused, { profile: this.profile, operation, status, upstream: said });
      throw new EstError('EST_UPSTREAM_POP', {
        reason:
          "the upstream CA refused the CSR's challengePassword as tls-unique proof-of-possession (401): est-ra's RA certificate has no id-kp-cmcRA (1.3.6.1.5.5.7.3.28)",
      });
    }
    if (status === 401 || status === 403) {
      this.logger.error(LOG_EVENT.upstreamAuthFailed, { profile: this.profile, operation, status, upstream: said });
      throw new EstError('EST_UPSTREAM_AUTH', { reason: `the upstream CA rejected est-ra's own credentials (${status})` });
    }
    if (status === 408 || status === 429 || status >= 500)
      throw new UpstreamUnavailableError(`upstream ${operation} answered ${status}${said ? ` ${said}` : ''}`, {
        // 408, 429 and 503 say the request was not processed (RFC 9110 §15.5.9, RFC 6585 §4, RFC 9110 §15.6.4).
        mayHaveReachedUpstream: status !== 408 && status !== 429 && status !== 503,
      });
    throw new EstError('EST_UPSTREAM_REFUSED', { reason: `the upstream CA refused the request (${status}${said ? ` ${said}` : ''})` });
  }
}

const ID_KP_CMC_RA = '1.3.6.1.5.5.7.3.28';

/**
 * Whether est-ra's RA certificate on this connection carries id-kp-cmcRA.
 * libest (and RFC 7030 §3.7 RAs) skip the tls-unique check of a CSR's
 * challengePassword only for such a certificate; without it a device's
 * channel binding can never match est-ra's own connection. Read from the
 * TLS socket, so it holds for a PEM and a PKCS#12 identity alike.
 */
function presentedCmcRa(response: AxiosResponse): boolean {
  const socket = (response.request as { socket?: TLSSocket } | undefined)?.socket;
  const own = socket?.getCertificate();
  // Node leaves ext_key_usage out when the certificate has no EKU extension.
  const usages: unknown = own && 'ext_key_usage' in own ? own.ext_key_usage : undefined;
  return Array.isArray(usages) && usages.includes(ID_KP_CMC_RA);
}

/**
 * A text answer without the NUL bytes some servers put after it (libest's
 * example estserver ends /csrattrs with one and counts it in Content-Length).
 * Raw DER is left alone: it can end in 0x00 (a certs-only PKCS#7 ends with
 * an empty SET, 31 00).
 */
function withoutTrailingNuls(body: Buffer): Buffer {
  if (body[0] === 0x30 && body.length > 1 && body[1]! >= 0x80) return body;
  let end = body.length;
  while (end > 0 && body[end - 1] === 0) end--;
  return body.subarray(0, end);
}

function parseCertificates(certsOnly: Buffer): x509.X509Certificate[] {
  try {
    return parseCertsOnly(certsOnly).map((der) => {
      CertificateView.parse(der); // strict DER first: asn1js alone reads BER and worse
      return new x509.X509Certificate(bytes(der));
    });
  } catch (cause) {
    throw new EstError('EST_UPSTREAM_INVALID', {
      reason: `upstream /cacerts answer is not a certs-only PKCS#7 of DER certificates: ${whatIsWrong(cause)}`,
      cause,
    });
  }
}

function basicHeader(basic: { username?: string; passcode: string }): string {
  const credentials = basic.username === undefined ? basic.passcode : `${basic.username}:${basic.passcode}`;
  return `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
}

/**
 * The longest an upstream's Retry-After is followed: est-ra polls a pending
 * request at least daily. Without a bound, `Retry-After: 99999999999999999999`
 * (or a 400-digit one, Infinity) made the next poll an invalid Date, and
 * recording it threw a RangeError: a 500 to the device (found by npm run fuzz).
 */
export const MAX_UPSTREAM_RETRY_AFTER_S = 86_400;

/** Retry-After as delay-seconds or an HTTP-date (RFC 9110 §10.2.3), within 1 s .. a day; 60 s when absent or unreadable. */
export function retryAfterSeconds(header: unknown, now: Date): number {
  const value = typeof header === 'string' ? header.trim() : '';
  const date = Date.parse(value);
  const seconds = /^\d+$/.test(value) ? Number(value) : Number.isNaN(date) ? 60 : Math.ceil((date - now.getTime()) / 1000);
  return Math.min(MAX_UPSTREAM_RETRY_AFTER_S, Math.max(1, seconds));
}

function firstLine(body: Buffer): string {
  return body
    .toString('utf8', 0, Math.min(body.length, 300))
    .split(/\r?\n/)[0]!
    .replace(/[^\x20-\x7e]/g, '')
    .trim();
}

/**
 * Errors raised before a byte of the request could reach the upstream: no
 * route, no name, connection refused, or a server certificate est-ra refused
 * (the request is written only after the TLS handshake succeeded).
 */
const FAILED_BEFORE_SENDING = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

function failedBeforeSending(err: unknown): boolean {
  if (!(err instanceof AxiosError)) return false;
  const cause = err.cause as { code?: unknown } | undefined;
  const code = typeof cause?.code === 'string' ? cause.code : (err.code ?? '');
  return FAILED_BEFORE_SENDING.has(code) || /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT/.test(code);
}

function describe(err: unknown): string {
  if (err instanceof AxiosError) return err.code === 'ECONNABORTED' ? 'timed out' : (err.code ?? err.message);
  return err instanceof Error ? err.message : String(err);
}
