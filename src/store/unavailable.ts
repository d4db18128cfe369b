import { EstError } from '../errors.js';
import type { Store } from './types.js';

/** What a device is told to wait when the database cannot be reached: a restart or a failover takes seconds. */
const STORE_RETRY_AFTER_S = 10;

/** Socket errors of a database connection that failed or could not be made (node-postgres passes them on as they are). */
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * PostgreSQL SQLSTATEs (Appendix A of its manual) that say the server, not
 * the statement, is the problem: class 08 (connection exception), 53100 disk
 * full, 53300 too many connections, 57P01–57P03 (shut down, crashed, not yet
 * accepting connections), 25006 (a read-only standby, as after a failover).
 */
const POSTGRES_UNAVAILABLE = /^(?:08...|53100|53300|57P0[123]|25006)$/;

/** node-postgres's own errors for a connection that ended or never came, which carry no code. */
const POSTGRES_CONNECTION_MESSAGE = /^Connection terminated|timeout exceeded when trying to connect|is not queryable/;

/** SQLite result codes (better-sqlite3's `code`) for a file that cannot take a write: disk full, I/O error, locked by another process. */
const SQLITE_UNAVAILABLE = /^SQLITE_(?:FULL|IOERR|BUSY)/;

/**
 * Whether a store call failed because the database could not be reached or
 * could not take the write, rather than because of what was asked: the
 * device gets 503 and retries, and nothing it sent is taken as refused.
 */
export function isStoreUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (NETWORK_ERRORS.has(code) || POSTGRES_UNAVAILABLE.test(code) || SQLITE_UNAVAILABLE.test(code))) return true;
  return POSTGRES_CONNECTION_MESSAGE.test(err.message);
}

/** EST_STORE_UNAVAILABLE for a failure isStoreUnavailable recognises, its cause kept; anything else as it was. */
export function asStoreUnavailable(err: unknown): unknown {
  if (err instanceof EstError || !isStoreUnavailable(err)) return err;
  return new EstError('EST_STORE_UNAVAILABLE', { retryAfter: STORE_RETRY_AFTER_S, cause: err });
}

/**
 * `store` with every failure that isStoreUnavailable recognises turned into
 * EST_STORE_UNAVAILABLE (503, Retry-After), the database's own message kept
 * as the cause for the logs: one place for both stores and every method, so
 * no caller mistakes an outage for est-ra's own fault (500) or the device's.
 */
export function reportingUnavailability(store: Store): Store {
  const translate = (err: unknown): never => {
    throw asStoreUnavailable(err);
  };
  // One wrapper per method, made on first use: every enrollment calls the same few methods.
  const wrappers = new Map<PropertyKey, (...args: unknown[]) => unknown>();
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      let wrapper = wrappers.get(property);
      if (!wrapper) {
        wrapper = (...args: unknown[]): unknown => {
          try {
            const result: unknown = value.apply(target, args);
            return result instanceof Promise ? result.catch(translate) : result;
          } catch (err) {
            return translate(err);
          }
        };
        wrappers.set(property, wrapper);
      }
      return wrapper;
    },
  });
}
