import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { MIGRATIONS } from '../../src/store/sqlite-database.js';
import { openStore } from '../../src/store/open.js';

/** The store as the release before approvals left it: migrations 1-5, with an issued request, its certificate and a queued one. */
function storeBeforeApprovals(file: string): void {
  const db = new Database(file);
  try {
    for (const migration of MIGRATIONS.slice(0, 5)) db.exec(migration);
    db.pragma('user_version = 5');
    const principal = JSON.stringify({ kind: 'passcode', passcodeId: 'p1', policy: 'demo' });
    db.prepare(
      `INSERT INTO passcodes (id, policy, hash, created_at, max_uses, uses) VALUES ('p1', 'demo', 'sha256:00', '2026-11-01T00:00:00.000Z', 5, 2)`,
    ).run();
    const insert = db.prepare(
      `INSERT INTO requests (id, received_at, completed_at, profile, peer_address, principal, operation, csr_sha256, state, status, serial, subject, not_after,
         possibly_issued_twice_upstream)
       VALUES (@id, @at, @completed, 'demo', '10.0.0.7', @principal, 'simpleenroll', @sha, @state, @status, @serial, @subject, @notAfter, @twice)`,
    );
    insert.run({
      id: 'r-issued',
      at: '2026-11-02T00:00:00.000Z',
      completed: '2026-11-02T00:00:01.000Z',
      principal,
      sha: 'aa',
      state: 'issued',
      status: 200,
      serial: '0a',
      subject: 'CN=d1',
      notAfter: '2027-11-02T00:00:00.000Z',
      twice: 1,
    });
    insert.run({
      id: 'r-queued',
      at: '2026-11-03T00:00:00.000Z',
      completed: null,
      principal,
      sha: 'bb',
      state: 'queued',
      status: 202,
      serial: null,
      subject: null,
      notAfter: null,
      twice: 0,
    });
    db.prepare(
      `INSERT INTO certificates (serial, request_id, profile, subject, not_before, not_after, der)
       VALUES ('0a', 'r-issued', 'demo', 'CN=d1', '2026-11-02T00:00:00.000Z', '2027-11-02T00:00:00.000Z', x'3000')`,
    ).run();
  } finally {
    db.close();
  }
}

describe('store migration 6: the requests table rebuilt for awaiting_approval, and approvals', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-migration-'));
    file = join(dir, 'est-ra.db');
    storeBeforeApprovals(file);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('ok keeps every request, certificate and column; the certificates still reference requests; the file passes integrity_check', async () => {
    const store = await openStore({ sqlite: { path: file } });
    try {
      expect(await store.getRequest('r-issued')).to.include({ state: 'issued', serial: '0a', possiblyIssuedTwiceUpstream: true, peerAddress: '10.0.0.7' });
      expect(await store.getRequest('r-queued')).to.include({ state: 'queued', status: 202 });
      expect(await store.findIssuedBySerial('0a')).to.deep.include({ profile: 'demo' });
      expect((await store.findByCsr('demo', 'simpleenroll', 'aa'))?.approval).to.equal(null);
      expect(await store.countWaiting()).to.deep.equal({ queued: 1 });
    } finally {
      await store.close();
    }
    const db = new Database(file, { readonly: true });
    try {
      expect(db.pragma('user_version', { simple: true })).to.equal(MIGRATIONS.length);
      expect(db.pragma('integrity_check', { simple: true })).to.equal('ok');
      expect(db.pragma('foreign_key_check')).to.deep.equal([]);
      expect((db.pragma('foreign_key_list(certificates)') as { table: string }[]).map((fk) => fk.table)).to.deep.equal(['requests']);
      expect((db.pragma('index_list(requests)') as { name: string }[]).map((i) => i.name).sort()).to.include.members([
        'requests_by_csr',
        'requests_completed',
        'requests_received_at',
        'requests_waiting',
      ]);
    } finally {
      db.close();
    }
  });

  it('ok a request awaiting approval is recorded with its approval in one write; rejecting refuses it and gives the passcode use back; pruning it removes its approval', async () => {
    const store = await openStore({ sqlite: { path: file } });
    try {
      const receivedAt = new Date('2026-11-04T00:00:00.000Z');
      const principal = { kind: 'passcode' as const, passcodeId: 'p1', policy: 'demo' };
      const request = { id: 'r-wait', receivedAt, profile: 'demo', peerAddress: '10.0.0.8', principal, operation: 'simpleenroll' as const, csrSha256: 'cc' };
      expect(await store.recordRequest(request, { passcodeId: 'p1', now: receivedAt }, { expiresAt: new Date('2026-11-11T00:00:00.000Z') })).to.equal(true);
      expect((await store.getPasscode('p1'))?.uses).to.equal(3);
      expect(await store.findByCsr('demo', 'simpleenroll', 'cc')).to.deep.include({
        state: 'awaiting_approval',
        approval: {
          requestId: 'r-wait',
          state: 'pending',
          requestedAt: receivedAt.toISOString(),
          expiresAt: '2026-11-11T00:00:00.000Z',
          decidedAt: null,
          decidedBy: null,
          reason: null,
        },
      });
      // Not forwarded by anyone: not waiting for the upstream, not taken back by a restart.
      expect((await store.listWaiting(new Date('2030-01-01'), 10)).map((r) => r.id)).to.deep.equal(['r-queued']);
      expect(await store.requeueInterrupted(['demo'], { now: new Date('2030-01-01') })).to.deep.equal([]);
      expect(await store.countPendingApprovals(new Date('2026-11-10T23:59:59.000Z'))).to.deep.equal({ demo: 1 });
      expect(await store.countPendingApprovals(new Date('2026-11-11T00:00:00.000Z'))).to.deep.equal({});

      const at = new Date('2026-11-05T00:00:00.000Z');
      const reject = { approved: false as const, by: 'alice', at, reason: 'unknown', refusal: 'request rejected by an administrator: unknown' };
      expect(await store.decideApproval('r-wait', reject)).to.equal(true);
      expect(await store.decideApproval('r-wait', reject)).to.equal(false);
      expect(await store.decideApproval('r-wait', { approved: true, by: 'bob', at })).to.equal(false);
      expect((await store.getPasscode('p1'))?.uses).to.equal(2);
      expect(await store.getRequest('r-wait')).to.include({ state: 'refused', status: 403, reason: 'request rejected by an administrator: unknown' });
      expect((await store.findByCsr('demo', 'simpleenroll', 'cc'))?.approval).to.include({ state: 'rejected', decidedBy: 'alice' });

      expect(await store.prune(new Date('2026-12-01T00:00:00.000Z'))).to.be.greaterThan(0);
      expect(await store.getApproval('r-wait')).to.equal(undefined);
    } finally {
      await store.close();
    }
  });
});
