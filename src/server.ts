import { constants, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { LoadedConfig } from './config/load.js';
import { EstError } from './errors.js';
import { buildEstRouter } from './est/router.js';
import { sendError } from './est/respond.js';
import { ProfileDirectory, type Profile } from './policy/profile.js';
import { buildProfiles } from './profiles.js';
import { EnrollmentService } from './enrollment/service.js';
import { RetryWorker } from './enrollment/retry-worker.js';
import { joinCluster, newClusterNode, thisProcess } from './enrollment/node.js';
import { EST_RA_VERSION } from './version.js';
import { approvalExpired } from './enrollment/approvals.js';
import { EnrollmentPipeline } from './enrollment/pipeline.js';
import { openStore } from './store/open.js';
import { storeLocationOf } from './config/store-location.js';
import type { PasscodeRecord, Store } from './store/types.js';
import { createLogger, type Logger } from './ops/logger.js';
import { listenUrls } from './ops/listen-urls.js';
import { LOG_EVENT } from './ops/log-events.js';
import { LogThrottle } from './ops/log-throttle.js';
import { guardConnections } from './est/connection-guard.js';
import { acceptProxyProtocol } from './est/proxy-protocol.js';
import { compileAllowlist } from './auth/allowlist.js';
import { peerCertificateOf } from './est/peer-certificate.js';
import { RefusalLimiter } from './ops/refusal-budget.js';
import type { KeyPackageSigner } from './pki/server-key.js';
import { Metrics, startOpsListener, type MetricSources, type WatchedCertificate } from './ops/metrics.js';
import { passcodeStatus } from './auth/passcode.js';

/** Requests without credentials (answered with the 401 challenge) an address may send per minute, per refusal it may get. */
const CHALLENGES_PER_REFUSAL = 10;

export interface ServerOptions {
  /** The clock every time-dependent decision reads; tests inject their own. */
  readonly now?: () => Date;
  readonly logger?: Logger;
  /** Overrides the configured port, e.g. 0 for an ephemeral one. */
  readonly port?: number;
}

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  readonly store: Store;
  readonly logger: Logger;
  readonly retryWorker: RetryWorker;
  readonly metrics: Metrics;
  /** The /metrics and /healthz listener, when configured. */
  readonly opsUrl?: string;
  /**
   * Serves `config` from now on without dropping a connection (SIGHUP,
   * `systemctl reload`): profiles, authentication policies, the TLS
   * certificate and CAs, timeouts and the log level. Throws, keeping the
   * running configuration, when the new one cannot be built. Returns the
   * changed settings that only a restart applies.
   */
  reload(config: LoadedConfig): Promise<{ readonly restartNeeded: readonly string[] }>;
  /**
   * Stops. With `drain` (SIGTERM, `systemctl stop`): no new connections, the
   * requests in flight are answered (for at most limits.request_timeout_ms,
   * the longest any request may take anyway), then it stops; without it,
   * open connections are cut at once.
   */
  close(options?: { readonly drain?: boolean }): Promise<void>;
}

/** Settings a reload cannot apply to a running server: listeners, the store, the log format, the body limit the router was built with. */
const RESTART_ONLY: readonly ((config: LoadedConfig) => [string, unknown])[] = [
  (c) => ['listen', c.listen],
  (c) => ['store', c.store],
  (c) => ['ops', c.ops],
  (c) => ['log.format', c.log.format],
  (c) => ['limits.max_body_bytes', c.limits.max_body_bytes],
  (c) => ['limits.handshake_timeout_ms', c.limits.handshake_timeout_ms],
];

/** Composition root: builds every part from the configuration, wires them and listens. */
export async function startServer(config: LoadedConfig, options: ServerOptions = {}): Promise<RunningServer> {
  const now = options.now ?? (() => new Date());
  const logger = options.logger ?? createLogger(config.log);
  const store = await openStore(storeLocationOf(config));
  // The gauges read the parts at scrape time; the parts are made below.
  const sources: MetricSources = {
    countWaiting: () => store.countWaiting(),
    upstreams: () =>
      profiles.profiles
        .filter((profile) => profile.forwardsCsrUnchanged)
        .map((profile) => ({ profile: profile.name, reachable: enrollment.health.probeDueAt(profile.name) === undefined })),
    certificates: () => watchedCertificates(tlsCertificate, profiles.profiles),
    passcodes: async () => passcodesByPolicy(await store.listPasscodes(), now()),
    pendingApprovals: () => store.countPendingApprovals(now()),
    storeReachable: () => store.countWaiting().then(() => true),
    now,
  };
  const metrics = new Metrics(sources);
  const profiles = new ProfileDirectory(await buildProfiles(config, { store, logger, metrics, now }));
  const node = newClusterNode(config.cluster.node_name, config.cluster.lease_seconds * 1000);
  // Before anything is taken back as this node's own (the retry worker's start): a second live process of this name refuses to start.
  try {
    await joinCluster(store, thisProcess(node, EST_RA_VERSION, now()), node.leaseMs, now());
  } catch (err) {
    await store.close();
    throw err;
  }
  const enrollment = new EnrollmentService(store, logger, metrics, now, node, config.limits.concurrent_key_generations);
  /** The TLS server certificate in force, for its days-left gauge. */
  let tlsCertificate = new X509Certificate(readFileSync(config.tls.certificate));
  /** est-ra's TLS identity in force, which signs encrypted server-generated keys (RFC 7030 §4.4.2). */
  let keyPackageSigner = tlsIdentityOf(config, tlsCertificate);
  /** The configuration in force: the one loaded at start, then each reload's. */
  let running = config;
  const retryWorker = new RetryWorker(enrollment, store, profiles, logger, now, {
    intervalMs: 250,
    concurrency: 32,
    // A dead node's requests wait at most a quarter of a lease longer than the lease itself.
    sweepMs: Math.min(node.leaseMs / 4, 30_000),
  });
  await retryWorker.start();
  // Retention, at start and hourly: the store stays bounded however long est-ra runs (issued certificates and waiting requests stay).
  // Approvals that ran out are recorded expired first (a device's retry and the admin commands also do, when they meet one).
  const prune = (): void => {
    store.expireApprovals(now(), approvalExpired().reason).then(
      (expired) => expired > 0 && logger.info(LOG_EVENT.approvalsExpired, { count: expired }),
      (err: unknown) => logger.error(LOG_EVENT.internalError, { error: err instanceof Error ? err.stack : String(err) }),
    );
    const before = new Date(now().getTime() - running.store.retention_days * 86_400_000);
    store.prune(before).then(
      (rows) => rows > 0 && logger.info(LOG_EVENT.pruned, { rows, before: before.toISOString() }),
      (err: unknown) => logger.error(LOG_EVENT.internalError, { error: err instanceof Error ? err.stack : String(err) }),
    );
  };
  const pruneTimer = setInterval(prune, 3_600_000).unref();
  prune();

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  const pipeline = new EnrollmentPipeline(store, profiles, enrollment, now, new RefusalLimiter(() => running.limits.refusals_per_minute_per_passcode));
  const refusals = new RefusalLimiter(() => running.limits.refusals_per_minute_per_address);
  // A client asking for the challenge first asks once per enrollment: ten times the refusal budget leaves
  // room for a gateway enrolling twenty devices a second, and none for a flood.
  const challenges = new RefusalLimiter(() => CHALLENGES_PER_REFUSAL * running.limits.refusals_per_minute_per_address);
  app.use(
    '/.well-known/est',
    buildEstRouter({
      profiles,
      pipeline,
      logger,
      metrics,
      refusals,
      challenges,
      refusedAnswerDelayMs: () => running.limits.refused_answer_delay_ms,
      keyPackageSigner: () => keyPackageSigner,
      maxBodyBytes: config.limits.max_body_bytes,
    }),
  );
  app.use((_req, res) => sendError(res, new EstError('EST_NOT_FOUND')));

  const server = createServer(
    {
      ...(await tlsContextOptions(config, profiles.profiles)),
      // Ask for a client certificate without requiring one, so passcode
      // clients still connect; each operation decides what it accepts.
      requestCert: true,
      rejectUnauthorized: false,
      // A client that connects and never finishes the handshake holds a connection for nothing: seconds, not the header timeout.
      handshakeTimeout: config.limits.handshake_timeout_ms,
      headersTimeout: config.limits.headers_timeout_ms,
      requestTimeout: config.limits.request_timeout_ms,
      keepAliveTimeout: config.limits.keep_alive_timeout_ms,
      // How often Node enforces the two timeouts above (its default, 30 s, would let a slow client hold on far longer).
      connectionsCheckingInterval: Math.min(1000, config.limits.headers_timeout_ms),
    },
    app,
  );
  server.maxConnections = config.limits.max_connections;
  const connectionRefusals = new LogThrottle(60_000);
  guardConnections(
    server,
    () => ({
      perAddress: running.limits.max_connections_per_address,
      total: running.limits.max_connections,
      reserve: running.limits.connections_reserve,
    }),
    (peer, reason) => {
      const { log, suppressed } = connectionRefusals.take(`${peer} ${reason}`, Date.now());
      if (log) logger.warn(LOG_EVENT.connectionRefused, { peer, reason, ...(suppressed > 0 ? { suppressed } : {}) });
    },
  );
  // Behind a TCP load balancer, its PROXY header is read before the guard counts the connection against the device's address.
  if (config.listen.proxy_protocol) {
    const headerRefusals = new LogThrottle(60_000);
    acceptProxyProtocol(server, compileAllowlist(config.listen.proxy_protocol.from), config.listen.proxy_protocol.header_timeout_ms, (peer, reason) => {
      const { log, suppressed } = headerRefusals.take(`${peer} ${reason}`, Date.now());
      if (log) logger.warn(LOG_EVENT.proxyHeaderRefused, { peer, reason, ...(suppressed > 0 ? { suppressed } : {}) });
    });
  }
  // Read once the handshake is done: it clears a verify error OpenSSL leaves behind (est/peer-certificate.ts).
  server.on('secureConnection', (socket: TLSSocket) => void peerCertificateOf(socket));
  // Refused handshakes (a bad client chain, a protocol error, a scanner) are audited: one line per address and
  // reason per minute, with the count held back.
  const tlsRefusals = new LogThrottle(60_000);
  server.on('tlsClientError', (err: Error & { code?: string }, socket) => {
    // A TLS socket ended by the handshake timeout has lost its remoteAddress on Node 20; the TCP socket under it has not.
    const peer = socket.remoteAddress ?? (socket as { _parent?: { remoteAddress?: string } })._parent?.remoteAddress ?? 'unknown';
    const reason = err.code ?? err.message;
    const { log, suppressed } = tlsRefusals.take(`${peer} ${reason}`, Date.now());
    if (log) logger.warn(LOG_EVENT.tlsRefused, { peer, reason, error: err.message, ...(suppressed > 0 ? { suppressed } : {}) });
  });

  await listen(server, options.port ?? config.listen.port, config.listen.host);
  const port = (server.address() as AddressInfo).port;
  const host = config.listen.host === '0.0.0.0' || config.listen.host === '::' ? '127.0.0.1' : config.listen.host;
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  /** Profiles replaced by a reload, kept until requests routed to them are done. */
  const retired = new Set<Profile>();
  const ops = config.ops && (await startOpsListener(metrics, sources, config.ops.listen.host, config.ops.listen.port));
  // The bound address as it is (0.0.0.0 means every address), and the URLs clients can use.
  const { bound, reachable } = listenUrls(config.listen.host, port);
  logger.info(LOG_EVENT.listening, { url: bound, urls: reachable, ...(ops ? { ops: ops.url } : {}), profiles: profiles.profiles.map((p) => p.name) });

  return {
    url,
    port,
    store,
    logger,
    retryWorker,
    metrics,
    opsUrl: ops?.url,
    async reload(next) {
      const built = await buildProfiles(next, { store, logger, metrics, now });
      try {
        server.setSecureContext(await tlsContextOptions(next, built));
        tlsCertificate = new X509Certificate(readFileSync(next.tls.certificate));
        keyPackageSigner = tlsIdentityOf(next, tlsCertificate);
      } catch (err) {
        closeUpstreams(built);
        throw err;
      }
      const restartNeeded = RESTART_ONLY.flatMap((setting) => {
        const [name, before] = setting(running);
        return JSON.stringify(before) === JSON.stringify(setting(next)[1]) ? [] : [name];
      });
      const previous = profiles.profiles;
      profiles.replace(built);
      server.maxConnections = next.limits.max_connections;
      server.headersTimeout = next.limits.headers_timeout_ms;
      server.requestTimeout = next.limits.request_timeout_ms;
      server.keepAliveTimeout = next.limits.keep_alive_timeout_ms;
      logger.level = next.log.level;
      running = next;
      // Requests already routed to the old profiles finish on their upstreams first.
      for (const profile of previous) retired.add(profile);
      setTimeout(() => {
        for (const profile of previous) retired.delete(profile);
        closeUpstreams(previous);
      }, next.limits.request_timeout_ms).unref();
      return { restartNeeded };
    },
    async close(options) {
      clearInterval(pruneTimer);
      ops?.server.close();
      await new Promise<void>((resolve) => {
        if (!options?.drain) {
          server.close(() => resolve());
          server.closeAllConnections();
          return;
        }
        // A keep-alive connection whose request was answered is idle again: it is
        // closed then, not kept until its keep-alive timeout.
        const closeIdle = setInterval(() => server.closeIdleConnections(), 100);
        const cutOff = setTimeout(() => server.closeAllConnections(), running.limits.request_timeout_ms);
        server.close(() => {
          clearInterval(closeIdle);
          clearTimeout(cutOff);
          resolve();
        });
      });
      await retryWorker.stop();
      closeUpstreams([...profiles.profiles, ...retired]);
      retired.clear();
      // The name is free for the next start at once; a store that cannot be written now leaves it to go silent.
      await store.nodeStopped(node.name, node.instance, now()).catch(() => {});
      await store.close();
    },
  };
}

/**
 * The TLS identity and the CAs a client certificate may come from, named in
 * the TLS CertificateRequest: every profile's CA certificates (renewals),
 * authentication CAs, pinned certificates and downstream RA CAs.
 */
async function tlsContextOptions(config: LoadedConfig, profiles: readonly Profile[]): Promise<SecureContextOptions> {
  const cas = await Promise.all(
    profiles.map(async (p) => [
      ...(await p.upstream.caCertificates().catch(() => [])),
      ...p.authenticationPolicy.authenticationCas,
      ...p.authenticationPolicy.pinnedCertificates,
      ...p.authenticationPolicy.downstreamRaCas,
    ]),
  );
  return {
    cert: readFileSync(config.tls.certificate),
    key: readFileSync(config.tls.key),
    minVersion: config.tls.min_version,
    // No session tickets: a device enrolls once in months, so a ticket is
    // never used, while making one (sealing the session, client certificate
    // included) cost ~0.3 ms of the event loop per mTLS handshake, about a
    // fifth of the handshake (measured with a bare node:https server).
    // No renegotiation: a client-initiated one is a CPU lever for a flood and nothing a device needs.
    secureOptions: constants.SSL_OP_NO_TICKET | constants.SSL_OP_NO_RENEGOTIATION,
    // TLS 1.2 with AEAD suites only (Mozilla "intermediate"); TLS 1.3 suites are AEAD anyway.
    ciphers: config.tls.ciphers,
    ca: cas.flat().map((c) => c.toString('pem')),
  };
}

/** Every certificate est-ra depends on: its TLS certificate, each profile's CAs and RA certificate. */
async function watchedCertificates(tls: X509Certificate, profiles: readonly Profile[]): Promise<WatchedCertificate[]> {
  const watched: WatchedCertificate[] = [
    { kind: 'tls', profile: '', subject: tls.subject.replace(/\n/g, ', '), notBefore: new Date(tls.validFrom), notAfter: new Date(tls.validTo) },
  ];
  for (const profile of profiles) {
    // An upstream that has never answered has no CAs yet: nothing to watch, and /readyz does not wait for it.
    for (const ca of await profile.upstream.caCertificates().catch(() => []))
      watched.push({ kind: 'ca', profile: profile.name, subject: ca.subject, notBefore: ca.notBefore, notAfter: ca.notAfter });
    const ra = profile.upstream.raCertificate?.();
    if (ra) watched.push({ kind: 'ra', profile: profile.name, ...ra });
  }
  return watched;
}

/** Uses and passcodes by status, per authentication policy. */
function passcodesByPolicy(passcodes: readonly PasscodeRecord[], now: Date): { policy: string; uses: number; byStatus: Record<string, number> }[] {
  const byPolicy = new Map<string, { policy: string; uses: number; byStatus: Record<string, number> }>();
  for (const passcode of passcodes) {
    const entry = byPolicy.get(passcode.policy) ?? { policy: passcode.policy, uses: 0, byStatus: {} };
    entry.uses += passcode.uses;
    const status = passcodeStatus(passcode, now).replace(/\W+/g, '_');
    entry.byStatus[status] = (entry.byStatus[status] ?? 0) + 1;
    byPolicy.set(passcode.policy, entry);
  }
  return [...byPolicy.values()];
}

function closeUpstreams(profiles: readonly Profile[]): void {
  for (const profile of profiles) profile.upstream.close?.();
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The TLS server certificate and its key, as the signer of a server-generated key package. */
function tlsIdentityOf(config: LoadedConfig, certificate: X509Certificate): KeyPackageSigner {
  return { certificate: certificate.raw, key: createPrivateKey(readFileSync(config.tls.key)) };
}
