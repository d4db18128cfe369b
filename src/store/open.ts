import { PostgresStore, type PostgresConnection } from './postgres.js';
import { SqliteStore } from './sqlite.js';
import type { MigrationStatus } from './migrations.js';
import type { Store } from './types.js';
import { reportingUnavailability } from './unavailable.js';

/** Which store to open: one SQLite file (one node), or a PostgreSQL database that several nodes share. */
export type StoreLocation = { readonly sqlite: { readonly path: string } } | { readonly postgres: PostgresConnection };

/**
 * The one place a store is opened (est-ra serve, the admin commands, init
 * and demo). Opening applies the migrations this version knows, so the
 * schema is current before the first request; `migrationStatus` looks
 * without changing anything (`est-ra migrate --check`). `readOnly` (est-ra
 * simulate): the database itself refuses every write, and nothing is migrated.
 * A database that cannot be reached or written is reported as 503
 * EST_STORE_UNAVAILABLE by every method (unavailable.ts).
 */
export async function openStore(location: StoreLocation, options: { readonly readOnly?: boolean } = {}): Promise<Store> {
  try {
    const store = 'sqlite' in location ? new SqliteStore(location.sqlite.path, options) : await PostgresStore.open(location.postgres, options);
    return reportingUnavailability(store);
  } catch (err) {
    throw new StoreOpenError(location, err);
  }
}

export async function migrationStatus(location: StoreLocation): Promise<MigrationStatus> {
  try {
    return await ('sqlite' in location ? SqliteStore.migrationStatus(location.sqlite.path) : PostgresStore.migrationStatus(location.postgres));
  } catch (err) {
    throw new StoreOpenError(location, err);
  }
}

/**
 * A store that could not be opened (est-ra serve at start, an admin
 * command): one line naming the store and the database's or driver's own
 * reason, such as `connect ECONNREFUSED` or a TLS certificate problem.
 */
export class StoreOpenError extends Error {
  constructor(location: StoreLocation, cause: unknown) {
    super(`cannot open the store ${describeLocation(location)}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'StoreOpenError';
  }
}

/** The store as messages name it: the SQLite file, or the PostgreSQL database without credentials (a URL never carries a password). */
export function describeLocation(location: StoreLocation): string {
  if ('sqlite' in location) return location.sqlite.path;
  const { connectionString, user, host, port, database } = location.postgres;
  if (connectionString !== undefined) return connectionString;
  return `postgres://${user ? `${user}@` : ''}${host ?? ''}${port ? `:${port}` : ''}/${database ?? ''}`;
}
