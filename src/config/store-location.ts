import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { describeLocation, type StoreLocation } from '../store/open.js';
import type { Config } from './schema.js';
import { readSecret } from './secrets.js';

/**
 * Where the configuration says the store is, with the PostgreSQL password
 * read from its file or variable and `ssl.mode` turned into node-postgres's
 * TLS options as libpq means them: require encrypts without checking the
 * server, verify-ca checks its certificate against `ca`, verify-full checks
 * the host name too.
 */
export function storeLocationOf(config: Pick<Config, 'store'>): StoreLocation {
  const { sqlite, postgres } = config.store;
  if (sqlite) return { sqlite: { path: sqlite.path } };
  const settings = postgres!;
  const ca = settings.ssl?.ca === undefined ? undefined : readFileSync(settings.ssl.ca, 'utf8');
  let ssl: boolean | ConnectionOptions = false;
  switch (settings.ssl?.mode) {
    case 'require':
      ssl = { rejectUnauthorized: false };
      break;
    case 'verify-ca':
      ssl = { rejectUnauthorized: true, ...(ca ? { ca } : {}), checkServerIdentity: () => undefined };
      break;
    case 'verify-full':
      ssl = { rejectUnauthorized: true, ...(ca ? { ca } : {}) };
      break;
  }
  return {
    postgres: {
      ...(settings.url !== undefined ? { connectionString: settings.url } : {}),
      ...(settings.host !== undefined ? { host: settings.host } : {}),
      ...(settings.port !== undefined ? { port: settings.port } : {}),
      ...(settings.database !== undefined ? { database: settings.database } : {}),
      ...(settings.user !== undefined ? { user: settings.user } : {}),
      ...(settings.password ? { password: readSecret(settings.password, 'store.postgres.password') } : {}),
      ssl,
      max: settings.pool_size,
      // A node that cannot reach the database fails fast rather than hanging a request.
      connectionTimeoutMillis: 5_000,
    },
  };
}

/** How the store is named in messages: the SQLite file, or the PostgreSQL database without credentials. */
export function describeStore(config: Pick<Config, 'store'>): string {
  const { sqlite, postgres } = config.store;
  if (sqlite) return describeLocation({ sqlite: { path: sqlite.path } });
  const { url, host, port, database, user } = postgres!;
  return describeLocation({ postgres: { connectionString: url, host, port, database, user } });
}
