import { PostgresStore, type PostgresConnection } from './postgres.js';
import { SqliteStore } from './sqlite.js';
import type { MigrationStatus } from './migrations.js';
import type { Store } from './types.js';
import { asStoreUnavailable, reportingUnavailability } from './unavailable.js';

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
    throw asStoreUnavailable(err);
  }
}

export async function migrationStatus(location: StoreLocation): Promise<MigrationStatus> {
  return 'sqlite' in location ? SqliteStore.migrationStatus(location.sqlite.path) : PostgresStore.migrationStatus(location.postgres);
}
