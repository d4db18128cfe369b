import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { LoadedConfig } from './config/load.js';
import type { ProfileConfig } from './config/schema.js';
import { EstError } from './errors.js';
import { buildEstRouter } from './est/router.js';
import { sendError } from './est/respond.js';
import { encodeCsrAttrs } from './est/csrattrs.js';
import { x509 } from './pki/x509.js';
import { buildCertsOnly } from './pki/certs-only.js';
import { ProfileDirectory, type Profile } from './policy/profile.js';
import { keyTypeAllowed } from './policy/rules.js';
import { LocalCaUpstream, type IssuancePolicy } from './upstream/local-ca.js';
import { SqliteStore } from './store/sqlite.js';
import type { Store } from './store/types.js';
import { createLogger, type Logger } from './ops/logger.js';
import { LOG_EVENT } from './ops/log-events.js';

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
  close(): Promise<void>;
}

/** Composition root: builds every part from the configuration, wires them and listens. */
export async function startServer(config: LoadedConfig, options: ServerOptions = {}): Promise<RunningServer> {
  const now = options.now ?? (() => new Date());
  const logger = options.logger ?? createLogger(config.log);
  const profiles = new ProfileDirectory(await Promise.all(Object.entries(config.profiles).map(([name, p]) => buildProfile(name, p, config, now))));
  const store = new SqliteStore(config.store.sqlite.path);

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.use('/.well-known/est', buildEstRouter({ profiles, store, logger, now, maxBodyBytes: config.limits.max_body_bytes }));
  app.use((_req, res) => sendError(res, new EstError('EST_NOT_FOUND')));

  const server = createServer(
    {
      cert: readFileSync(config.tls.certificate),
      key: readFileSync(config.tls.key),
      minVersion: config.tls.min_version,
      // Ask for a client certificate without requiring one, so passcode
      // clients still connect; each operation decides what it accepts.
      requestCert: true,
      rejectUnauthorized: false,
      ca: profiles.profiles.flatMap((p) => p.issuingCa.toString('pem')),
      // A client that connects and never finishes the handshake is dropped as one that never sends headers.
      handshakeTimeout: config.limits.headers_timeout_ms,
      headersTimeout: config.limits.headers_timeout_ms,
      requestTimeout: config.limits.request_timeout_ms,
      keepAliveTimeout: config.limits.keep_alive_timeout_ms,
      // How often Node enforces the two timeouts above (its default, 30 s, would let a slow client hold on far longer).
      connectionsCheckingInterval: Math.min(1000, config.limits.headers_timeout_ms),
    },
    app,
  );
  server.maxConnections = config.limits.max_connections;
  server.on('tlsClientError', (err) => logger.debug(LOG_EVENT.clientError, { error: err.message }));

  await listen(server, options.port ?? config.listen.port, config.listen.host);
  const port = (server.address() as AddressInfo).port;
  const host = config.listen.host === '0.0.0.0' || config.listen.host === '::' ? '127.0.0.1' : config.listen.host;
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info(LOG_EVENT.listening, { url, profiles: profiles.profiles.map((p) => p.name) });

  return {
    url,
    port,
    store,
    logger,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await store.close();
    },
  };
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

const UNIT_MS = { hours: 3_600_000, days: 86_400_000, months: 30 * 86_400_000, years: 365 * 86_400_000 } as const;

async function buildProfile(name: string, config: ProfileConfig, root: LoadedConfig, now: () => Date): Promise<Profile> {
  const issuingCa = new x509.X509Certificate(readFileSync(config.local_ca.certificate));
  const chain = [issuingCa, ...config.local_ca.chain.map((file) => new x509.X509Certificate(readFileSync(file)))] as const;
  const policy: IssuancePolicy = {
    validityMs: config.validity.duration_value * UNIT_MS[config.validity.duration_unit],
    keyUsage: config.key_usage,
    extendedKeyUsage: config.extended_key_usage,
  };
  const upstream = await LocalCaUpstream.create(readFileSync(config.local_ca.key, 'utf8'), chain, policy, now);
  const labels = [...(config.labels ?? [name]), ...(config.default ? [''] : [])];
  return {
    name,
    labels,
    authenticationPolicy: {
      name: config.authentication_policy,
      enableUsernameForPasscode: root.authentication_policies[config.authentication_policy]!.enable_username_for_passcode,
    },
    rules: [keyTypeAllowed(config.allowed_key_types)],
    upstream,
    issuingCa,
    caCertsPkcs7: buildCertsOnly(await upstream.caCertificates()),
    csrAttrs: encodeCsrAttrs(config.csrattrs),
  };
}
