import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import pg from 'pg';
import { EstError } from '../../src/errors.js';
import { openStore } from '../../src/store/open.js';
import { asStoreUnavailable, isStoreUnavailable } from '../../src/store/unavailable.js';
import { freePort } from '../helpers/net.js';

/** What the drivers really throw, not look-alikes: the classification is only as good as the errors it was shown. */
describe('store unavailable: a database that cannot be reached or written is told apart from a bad statement', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'est-ra-unavailable-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('ok node-postgres connecting to a port nobody listens on: unavailable (503 for a request); openStore names the store and the cause', async () => {
    const port = await freePort();
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'est_ra', database: 'est_ra', connectionTimeoutMillis: 2_000 });
    const err = await client.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStoreUnavailable(err)).to.equal(true);
    const opened = await openStore({ postgres: { host: '127.0.0.1', port, user: 'est_ra', database: 'est_ra', connectionTimeoutMillis: 2_000 } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    // Opening is not a request: one line naming the store and why, for the journal or the admin's terminal.
    expect((opened as Error).message).to.match(new RegExp(`^cannot open the store postgres://est_ra@127\\.0\\.0\\.1:${port}/est_ra: connect ECONNREFUSED`));
    expect(isStoreUnavailable((opened as Error).cause)).to.equal(true);
    expect(asStoreUnavailable((opened as Error).cause))
      .to.be.instanceOf(EstError)
      .and.to.include({ code: 'EST_STORE_UNAVAILABLE', status: 503, retryAfter: 10 });
  });

  it('ok SQLite whose file may grow no more (SQLITE_FULL, as on a full disk): unavailable', () => {
    const db = new Database(join(dir, 'full.db'));
    try {
      db.exec('CREATE TABLE t (x BLOB)');
      db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
      let err: unknown;
      try {
        db.prepare('INSERT INTO t VALUES (?)').run(Buffer.alloc(64 * 1024));
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string }).code).to.equal('SQLITE_FULL');
      expect(isStoreUnavailable(err)).to.equal(true);
    } finally {
      db.close();
    }
  });

  it("fail a statement's own error (a constraint, a syntax error) is not an outage and passes through unchanged", () => {
    const db = new Database(join(dir, 'ok.db'));
    try {
      db.exec('CREATE TABLE t (x INTEGER PRIMARY KEY)');
      db.prepare('INSERT INTO t VALUES (1)').run();
      const errors: unknown[] = [];
      for (const sql of ['INSERT INTO t VALUES (1)', 'SELEC 1'])
        try {
          db.exec(sql);
        } catch (e) {
          errors.push(e);
        }
      expect(errors).to.have.length(2);
      for (const err of errors) {
        expect(isStoreUnavailable(err)).to.equal(false);
        expect(asStoreUnavailable(err)).to.equal(err);
      }
      expect(isStoreUnavailable(new Error('duplicate key value violates unique constraint'))).to.equal(false);
      expect(isStoreUnavailable('a string')).to.equal(false);
    } finally {
      db.close();
    }
  });
});
