import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { bytes, subtle, x509 } from '../pki/x509.js';
import { CertificateView } from '../pki/certificate-view.js';
import { signingAlgorithmFor, webCryptoAlgorithmOf } from '../pki/certificate-builder.js';
import { ID_CE_SUBJECT_ALT_NAME } from '../pki/identity.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import { LOG_EVENT } from '../ops/log-events.js';
import type { EstUpstream } from './est.js';
import { loadPemIdentity, spkiOf, writePemIdentity, type RaIdentityFiles } from './ra-identity.js';

export interface RaRenewalOptions {
  /** Start renewing this long before the RA certificate expires, ms. */
  readonly renewBeforeMs: number;
  /** After a failed attempt, ms. */
  readonly retryEveryMs: number;
  /** A new key pair, or the current key. */
  readonly newKey: boolean;
  /** Where the identity lives; undefined for a PKCS#12 identity, which est-ra does not rewrite (it only alarms). */
  readonly files?: RaIdentityFiles;
}

/** How often a certificate that is not due yet is looked at again: a clock or a file may change meanwhile. */
const LOOK_AGAIN_MS = 6 * 3_600_000;
const DAY_MS = 86_400_000;

/**
 * Keeps est-ra's RA certificate alive: once it is within `renewBefore` of
 * expiring, re-enrolls it at the upstream (RFC 7030 §4.2.2, authenticated by
 * the current certificate), checks the answer, writes the new certificate
 * and key so no crash leaves a broken pair, and switches the upstream link
 * to it without a restart. Failures are retried, logged at error with the
 * days left and counted in est_ra_ra_certificate_renewal_failures_total, and
 * est_ra_certificate_days_left{kind="ra"} falls for all to see.
 */
export class RaCertificateRenewer {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;

  constructor(
    private readonly profile: string,
    private readonly upstream: EstUpstream,
    private readonly options: RaRenewalOptions,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly now: () => Date,
  ) {}

  start(): void {
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Renews now if due; resolves when done (tests and `check` both use it). */
  check(): Promise<void> {
    this.running ??= this.checkOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.check(), Math.min(delayMs, LOOK_AGAIN_MS));
    this.timer.unref();
  }

  private async checkOnce(): Promise<void> {
    const notAfter = new Date(this.upstream.currentIdentity().certificate.validTo).getTime();
    const dueAt = notAfter - this.options.renewBeforeMs;
    const now = this.now().getTime();
    const daysLeft = Math.floor((notAfter - now) / DAY_MS);
    if (now < dueAt) return this.schedule(dueAt - now);
    if (!this.options.files) {
      this.logger.warn(LOG_EVENT.raRenewalUnsupported, { profile: this.profile, days_left: daysLeft });
      return this.schedule(this.options.retryEveryMs);
    }
    try {
      await this.renew(this.options.files);
      this.schedule(0);
    } catch (err) {
      this.metrics.raRenewalFailures.inc({ profile: this.profile });
      this.logger.error(LOG_EVENT.raRenewalFailed, {
        profile: this.profile,
        days_left: daysLeft,
        not_after: new Date(notAfter).toISOString(),
        error: err instanceof Error ? err.message : String(err),
        retry_in_s: Math.round(this.options.retryEveryMs / 1000),
      });
      this.schedule(this.options.retryEveryMs);
    }
  }

  private async renew(files: RaIdentityFiles): Promise<void> {
    // Another profile with the same files may have renewed them already: use those.
    const onDisk = loadPemIdentity(files);
    const current = this.upstream.currentIdentity();
    if (onDisk.certificate.serialNumber !== current.certificate.serialNumber && new Date(onDisk.certificate.validTo) > new Date(current.certificate.validTo)) {
      this.upstream.useIdentity(onDisk);
      this.logger.info(LOG_EVENT.raRenewed, {
        profile: this.profile,
        serial: onDisk.certificate.serialNumber,
        not_after: onDisk.certificate.validTo,
        from: 'file',
      });
      return;
    }
    const key = this.options.newKey ? newKeyLike(current.key) : current.key;
    const csr = await renewalCsr(CertificateView.parse(current.certificate.raw), key);
    const issued = await this.upstream.reenrollRaCertificate(csr, spkiOf(key));
    const certificatePem = `${new x509.X509Certificate(bytes(issued.der)).toString('pem')}\n${current.chainPem}`;
    const keyPem = this.options.newKey ? key.export({ type: 'pkcs8', format: 'pem' }).toString() : undefined;
    writePemIdentity(files, certificatePem, keyPem);
    this.upstream.useIdentity(loadPemIdentity(files));
    this.logger.info(LOG_EVENT.raRenewed, {
      profile: this.profile,
      serial: issued.serialNumber,
      not_after: issued.notAfter.toISOString(),
      new_key: this.options.newKey,
    });
  }
}

/** A key of the same type and size as `key` (P-256 stays P-256, RSA 3072 stays RSA 3072). */
function newKeyLike(key: KeyObject): KeyObject {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      return generateKeyPairSync('ec', { namedCurve: details.namedCurve ?? 'prime256v1' }).privateKey;
    case 'rsa':
      return generateKeyPairSync('rsa', { modulusLength: details.modulusLength ?? 3072, publicExponent: 65537 }).privateKey;
    case 'ed25519':
      return generateKeyPairSync('ed25519').privateKey;
    default:
      throw new Error(`cannot make a new ${key.asymmetricKeyType ?? 'unknown'} key`);
  }
}

/** A PKCS#10 request for `key` with the current certificate's subject and subjectAltName (RFC 7030 §4.2.2). */
async function renewalCsr(current: CertificateView, key: KeyObject): Promise<Buffer> {
  const algorithm = webCryptoAlgorithmOf(key);
  if (!algorithm) throw new Error(`cannot sign a CSR with a ${key.asymmetricKeyType ?? 'unknown'} key`);
  const keys = {
    privateKey: await subtle.importKey('pkcs8', bytes(key.export({ type: 'pkcs8', format: 'der' })), algorithm, false, ['sign']),
    publicKey: await subtle.importKey('spki', bytes(spkiOf(key)), algorithm, true, ['verify']),
  };
  const san = current.extension(ID_CE_SUBJECT_ALT_NAME);
  const request = await x509.Pkcs10CertificateRequestGenerator.create({
    name: new x509.Name(bytes(current.subjectDer)),
    keys,
    signingAlgorithm: signingAlgorithmFor(keys.privateKey),
    extensions: san ? [new x509.Extension(bytes(san))] : [],
  });
  return Buffer.from(request.rawData);
}
