import { readSecret } from './config/secrets.js';
import { readFileSync } from 'node:fs';
import type { LoadedConfig } from './config/load.js';
import type { ProfileConfig } from './config/schema.js';
import { encodeCsrAttrs, mergeCsrAttrs } from './pki/csrattrs.js';
import { csrWishesOf } from './policy/csr-wishes.js';
import { pemCertificateBlocks, x509 } from './pki/x509.js';
import { buildCertsOnly } from './pki/certs-only.js';
import type { AuthenticationPolicy, Profile } from './policy/profile.js';
import { compileProfileRules } from './policy/compile-rules.js';
import { compileAllowlist } from './auth/allowlist.js';
import { LocalCaUpstream } from './upstream/local-ca.js';
import { EstUpstream } from './upstream/est.js';
import { RaCertificateRenewer } from './upstream/ra-renewal.js';
import { loadPemIdentity, loadPkcs12Identity, type RaIdentity } from './upstream/ra-identity.js';
import type { Upstream } from './upstream/types.js';
import type { Store } from './store/types.js';
import type { Logger } from './ops/logger.js';
import type { Metrics } from './ops/metrics.js';
import { LOG_EVENT } from './ops/log-events.js';
import { RevocationChecker } from './auth/revocation.js';

const UNIT_MS = { hours: 3_600_000, days: 86_400_000, months: 30 * 86_400_000, years: 365 * 86_400_000 } as const;

export interface ProfileServices {
  readonly store: Store;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly now: () => Date;
  /** `est-ra simulate`: est upstreams take their stored /cacerts and start nothing (no fetch, no refresh, no RA renewal). */
  readonly dryRun?: boolean;
}

/** Builds every configured profile with its upstream; est upstreams load their cached /cacerts and fetch a fresh one. */
export async function buildProfiles(config: LoadedConfig, services: ProfileServices): Promise<Profile[]> {
  const tlsChain = caCertificatesIn(readFileSync(config.tls.certificate, 'utf8'));
  const policies = new Map<string, AuthenticationPolicy>(
    Object.entries(config.authentication_policies).map(([name, policy]) => [
      name,
      {
        name,
        enableUsernameForPasscode: policy.enable_username_for_passcode,
        authenticationCas: policy.authentication_cas.flatMap((file) => certificatesIn(readFileSync(file, 'utf8'))),
        pinnedCertificates: policy.pinned_certificates.flatMap((file) => certificatesIn(readFileSync(file, 'utf8'))),
        downstreamRaCas: policy.downstream_ra_cas.flatMap((file) => certificatesIn(readFileSync(file, 'utf8'))),
        renewalCas: policy.renewal_cas.flatMap((file) => certificatesIn(readFileSync(file, 'utf8'))),
        revocation:
          policy.revocation.mode === 'off'
            ? undefined
            : new RevocationChecker(
                {
                  mode: policy.revocation.mode,
                  crlFiles: policy.revocation.crl_files,
                  useCrlDistributionPoints: policy.revocation.use_crl_distribution_points,
                  ocsp: { enabled: policy.revocation.ocsp, responderUrl: policy.revocation.ocsp_responder_url },
                  timeoutMs: policy.revocation.timeout_ms,
                },
                services.now,
              ),
        onRevocationUnknown: (reason: string) => {
          services.logger.warn(LOG_EVENT.revocationUnknown, { policy: name, reason });
          services.metrics.revocationUnknown.inc({ policy: name });
        },
      },
    ]),
  );
  return Promise.all(Object.entries(config.profiles).map(([name, profile]) => buildProfile(name, profile, policies, tlsChain, services)));
}

async function buildProfile(
  name: string,
  config: ProfileConfig,
  policies: ReadonlyMap<string, AuthenticationPolicy>,
  tlsChain: readonly x509.X509Certificate[],
  services: ProfileServices,
): Promise<Profile> {
  const upstream = await buildUpstream(name, config, services);
  const ownCsrAttrs = encodeCsrAttrs(csrWishesOf(config), config.csrattrs_form);
  let cacerts: { from: readonly x509.X509Certificate[]; pkcs7: Buffer } | undefined;
  return {
    name,
    labels: [...(config.labels ?? [name]), ...(config.default ? [''] : [])],
    authenticationPolicy: policies.get(config.authentication_policy)!,
    enrollAuthentication: { methods: config.enroll_authentication.methods, requireAll: config.enroll_authentication.require_all },
    ...compileProfileRules(config),
    allowlist: compileAllowlist(config.allowed_ip_addresses),
    approval: {
      enroll: config.require_approval_for_enroll,
      renew: config.require_approval_for_renew,
      retryAfterS: config.approval_retry_after_s,
      expiresAfterMs: config.approval_expires_after,
    },
    base64Framing: config.base64_framing,
    upstream,
    ...(config.fullcmc === 'passthrough' && upstream.fullCmcRoute ? { fullCmcRoute: () => upstream.fullCmcRoute!() } : {}),
    async cacertsPkcs7() {
      const certificates = await upstream.caCertificates();
      // Rebuilt only when the upstream's set changed (a refresh), not per request.
      if (cacerts?.from !== certificates) {
        const extra = config.est_cacerts_include_full_tls_chain ? tlsChain.filter((c) => !certificates.some((own) => own.equal(c))) : [];
        cacerts = { from: certificates, pkcs7: buildCertsOnly([...certificates, ...extra].map((c) => Buffer.from(c.rawData))) };
      }
      return cacerts.pkcs7;
    },
    async csrAttrs() {
      if (config.csrattrs_source === 'profile' || !upstream.csrAttrs) return ownCsrAttrs;
      let upstreams: Buffer | undefined;
      try {
        upstreams = await upstream.csrAttrs();
      } catch (err) {
        // /csrattrs is advice (RFC 7030 §4.5): an upstream that cannot give it
        // must not turn every device's /csrattrs into 502. The profile's own
        // attributes answer instead, and the admin sees why.
        services.logger.warn(LOG_EVENT.upstreamCsrattrsFallback, { profile: name, error: err instanceof Error ? err.message : String(err) });
        return ownCsrAttrs;
      }
      return config.csrattrs_source === 'upstream' ? mergeCsrAttrs(upstreams) : mergeCsrAttrs(ownCsrAttrs, upstreams);
    },
  };
}

async function buildUpstream(name: string, config: ProfileConfig, services: ProfileServices): Promise<Upstream> {
  if (config.upstream === 'local-ca') {
    const local = config.local_ca!;
    const chain = [local.certificate, ...local.chain].map((file) => new x509.X509Certificate(readFileSync(file))) as [
      x509.X509Certificate,
      ...x509.X509Certificate[],
    ];
    return LocalCaUpstream.create(
      readFileSync(local.key, 'utf8'),
      chain,
      {
        validityMs: config.validity.duration_value * UNIT_MS[config.validity.duration_unit],
        keyUsage: config.key_usage,
        extendedKeyUsage: config.extended_key_usage,
        signatureAlgorithm: config.signature_algorithm,
      },
      services.now,
    ).catch((err: unknown) => {
      throw new Error(`profiles.${name}.${err instanceof Error ? err.message : String(err)}`);
    });
  }
  const est = config.est!;
  const at = `profiles.${name}.est`;
  const files = est.ra_pkcs12 === undefined ? { certificate: est.ra_certificate!, key: est.ra_key! } : undefined;
  let identity: RaIdentity;
  try {
    identity = files
      ? loadPemIdentity(files)
      : loadPkcs12Identity(readFileSync(est.ra_pkcs12!), readSecret(est.ra_pkcs12_passphrase!, `${at}.ra_pkcs12_passphrase`));
  } catch (err) {
    throw new Error(`${at}: cannot load the RA identity: ${err instanceof Error ? err.message : String(err)}`);
  }
  const upstream = new EstUpstream(
    name,
    {
      url: est.url,
      identity,
      trustAnchors: est.trust_anchors.map((file) => readFileSync(file)),
      basic: est.passcode && { username: est.username, passcode: readSecret(est.passcode, `${at}.passcode`) },
      timeoutMs: est.timeout_ms,
      maxSockets: est.max_sockets,
      reenrollOperation: est.reenroll_operation,
      signatureAlgorithms: config.signature_algorithm === 'match_issuer' ? undefined : config.signature_algorithm,
      cacertsRefreshMs: est.cacerts_refresh_s * 1000,
    },
    services.store,
    services.logger,
    services.now,
  );
  if (services.dryRun) {
    await upstream.loadCached({ offline: true });
    return upstream;
  }
  await upstream.start();
  if (est.ra_renewal.enabled) {
    const renewal = est.ra_renewal;
    const renewer = new RaCertificateRenewer(
      name,
      upstream,
      { renewBeforeMs: renewal.renew_before, retryEveryMs: renewal.retry_every, newKey: renewal.new_key, files },
      services.logger,
      services.metrics,
      services.now,
    );
    renewer.start();
    upstream.onClose(() => renewer.stop());
  }
  return upstream;
}

/** Every certificate in a PEM bundle. */
function certificatesIn(pem: string): x509.X509Certificate[] {
  return pemCertificateBlocks(pem).map((block) => new x509.X509Certificate(block));
}

/** The CA certificates in a PEM bundle (the TLS certificate file: leaf, then its chain). */
function caCertificatesIn(pem: string): x509.X509Certificate[] {
  return certificatesIn(pem).filter((c) => c.getExtension(x509.BasicConstraintsExtension)?.ca === true);
}
