import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import pg from 'pg';
import { migrationStatus, openStore, type StoreLocation } from '../../src/store/open.js';
import type { NewRequest, PasscodeRecord, Store } from '../../src/store/types.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';

/**
 * The Store contract, on every store est-ra has: the same cases on a SQLite
 * file and on a real PostgreSQL server the test starts (initdb, pg_ctl).
 * Each case gets a fresh store. Where several nodes matter (a passcode's
 * last use), two stores are opened on the same database, as two nodes would.
 */
interface Backend {
  readonly name: string;
  /** A new empty store location; `second` opens another handle on the same one (a second node). */
  fresh(): Promise<StoreLocation>;
  before?(): Promise<void>;
  after?(): Promise<void>;
  /** Runs DDL on the store as another program would (a newer est-ra's migration on another node): its own connection. */
  alter(location: StoreLocation, sql: string): Promise<void>;
}

const dirs: string[] = [];
let postgres: TestPostgres | undefined;
let databases = 0;

const BACKENDS: Backend[] = [
  {
    name: 'SQLite',
    async fresh() {
      const dir = mkdtempSync(join(tmpdir(), 'est-ra-store-'));
      dirs.push(dir);
      return { sqlite: { path: join(dir, 'est-ra.db') } };
    },
    async alter(location, sql) {
      const db = new Database((location as { sqlite: { path: string } }).sqlite.path);
      try {
        db.exec(sql);
      } finally {
        db.close();
      }
    },
    async after() {
      for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    },
  },
  {
    name: 'PostgreSQL',
    async before() {
      postgres = await startPostgres();
    },
    async fresh() {
      const database = await postgres!.createDatabase(`est_ra_${++databases}`);
      return { postgres: { host: postgres!.host, port: postgres!.port, user: postgres!.user, password: postgres!.password, database } };
    },
    async alter(location, sql) {
      const client = new pg.Client((location as { postgres: pg.ClientConfig }).postgres);
      await client.connect();
      try {
        await client.query(sql);
      } finally {
        await client.end();
      }
    },
    async after() {
      await postgres?.stop();
    },
  },
];

const NOW = new Date('2026-12-01T10:00:00.000Z');
const minutes = (n: number): Date => new Date(NOW.getTime() + n * 60_000);

function request(overrides: Partial<NewRequest> = {}): NewRequest {
  const id = randomUUID();
  return {
    id,
    receivedAt: NOW,
    profile: 'line-1',
    peerAddress: '10.1.2.3',
    principal: { kind: 'passcode', passcodeId: 'p1', policy: 'plant' },
    operation: 'simpleenroll',
    csr: Buffer.from(`csr of ${id}`),
    csrSha256: `sha-${id}`,
    ...overrides,
  };
}

function passcode(overrides: Partial<PasscodeRecord> = {}): PasscodeRecord {
  return {
    id: 'p1',
    policy: 'plant',
    username: null,
    hash: `sha256:${randomUUID()}`,
    description: 'line 1',
    createdAt: NOW.toISOString(),
    enabled: true,
    maxUses: null,
    uses: 0,
    expiresAt: null,
    registeredValues: {},
    ...overrides,
  };
}

const lease = (owner: string, untilMinute: number) => ({ owner, expiresAt: minutes(untilMinute) });

const issued = (serial: string, notAfter = minutes(60 * 24 * 365)) => ({
  serial,
  subject: 'CN=sensor-17',
  notBefore: NOW,
  notAfter,
  certificate: Buffer.from(`certificate ${serial}`),
});

for (const backend of BACKENDS) {
  describe(`store contract: ${backend.name}`, function () {
    this.timeout(60_000);
    let location: StoreLocation;
    let store: Store;
    const others: Store[] = [];

    before(async () => backend.before?.());
    after(async () => backend.after?.());
    beforeEach(async () => {
      location = await backend.fresh();
      store = await openStore(location);
    });
    afterEach(async () => {
      for (const other of others.splice(0)) await other.close();
      await store.close();
    });
    const secondNode = async (): Promise<Store> => {
      const other = await openStore(location);
      others.push(other);
      return other;
    };

    it('opening applies every migration it knows, and opening again applies none', async () => {
      const status = await migrationStatus(location);
      expect(status.applied).to.equal(status.known).and.to.be.greaterThan(0);
      const again = await secondNode();
      expect((await again.stats()).requests).to.equal(0);
      expect(await migrationStatus(location)).to.deep.equal(status);
    });

    it('a request is durable, found by its CSR, and issued once with its certificate', async () => {
      const r = request({ principal: { kind: 'none' } });
      expect(await store.recordRequest(r)).to.equal(true);
      const found = await store.findByCsr('line-1', 'simpleenroll', r.csrSha256!);
      expect(found?.id).to.equal(r.id);
      expect(found?.state).to.equal('received');
      expect(found?.receivedAt).to.equal(NOW.toISOString());
      expect(found?.principal).to.deep.equal({ kind: 'none' });
      await store.recordIssued(r.id, minutes(1), issued('0a1b'));
      const record = await store.getRequest(r.id);
      expect(record).to.include({ state: 'issued', status: 200, serial: '0a1b', subject: 'CN=sensor-17', completedAt: minutes(1).toISOString() });
      expect((await store.getIssuedCertificate(r.id))?.toString()).to.equal('certificate 0a1b');
      expect(await store.findIssuedBySerial('0a1b')).to.deep.include({ profile: 'line-1' });
      expect((await store.getCertificate('0a1b'))?.requestId).to.equal(r.id);
      // Another node sees it at once.
      expect((await (await secondNode()).findIssuedBySerial('0a1b'))?.der.toString()).to.equal('certificate 0a1b');
    });

    it("a passcode's last use is taken once, whichever node the two devices reach", async () => {
      await store.addPasscode(passcode({ maxUses: 1 }));
      const other = await secondNode();
      const outcomes = await Promise.all([
        store.recordRequest(request(), { passcodeId: 'p1', now: NOW }),
        other.recordRequest(request(), { passcodeId: 'p1', now: NOW }),
      ]);
      expect(outcomes.filter(Boolean)).to.have.length(1);
      expect((await store.getPasscode('p1'))?.uses).to.equal(1);
      expect((await store.stats()).requests).to.equal(1);
    });

    it('many concurrent requests on two nodes take exactly max_uses uses', async () => {
      await store.addPasscode(passcode({ maxUses: 7 }));
      const other = await secondNode();
      const outcomes = await Promise.all(
        Array.from({ length: 30 }, (_, i) => (i % 2 ? other : store).recordRequest(request(), { passcodeId: 'p1', now: NOW })),
      );
      expect(outcomes.filter(Boolean)).to.have.length(7);
      expect((await store.getPasscode('p1'))?.uses).to.equal(7);
    });

    it('a disabled or expired passcode takes no use and records nothing', async () => {
      await store.addPasscode(passcode({ expiresAt: minutes(-1).toISOString() }));
      expect(await store.recordRequest(request(), { passcodeId: 'p1', now: NOW })).to.equal(false);
      await store.addPasscode(passcode({ id: 'p2' }));
      expect(await (await secondNode()).setPasscodeEnabled('p2', false)).to.equal(true);
      expect(await store.recordRequest(request(), { passcodeId: 'p2', now: NOW })).to.equal(false);
      expect(await store.findPasscode('plant', (await store.getPasscode('p2'))!.hash)).to.equal(undefined);
      expect((await store.stats()).requests).to.equal(0);
    });

    it('a refusal gives the passcode use back once, and a refusal before recording records the request', async () => {
      await store.addPasscode(passcode());
      const r = request();
      await store.recordRequest(r, { passcodeId: 'p1', now: NOW });
      await store.recordRefused(r, minutes(1), 403, 'upstream refused', { refundPasscodeUse: 'p1' });
      await store.recordRefused(r, minutes(2), 403, 'upstream refused', { refundPasscodeUse: 'p1' });
      expect((await store.getPasscode('p1'))?.uses).to.equal(0);
      expect(await store.getRequest(r.id)).to.include({ state: 'refused', status: 403, reason: 'upstream refused' });
      const early = request({ csr: undefined, csrSha256: undefined });
      await store.recordRefused(early, minutes(1), 400, 'not a CSR');
      expect(await store.getRequest(early.id)).to.include({ state: 'refused', status: 400, csr: null });
      // A refused request is not a device's earlier request to answer again.
      expect(await store.findByCsr('line-1', 'simpleenroll', r.csrSha256!)).to.equal(undefined);
    });

    it('waiting requests: queued, taken for forwarding once, pending when due, counted', async () => {
      const queued = request();
      const pending = request({ receivedAt: minutes(1) });
      await store.recordRequest(queued);
      await store.recordRequest(pending);
      await store.recordWaiting(queued.id, 'queued', minutes(5), 1, 'upstream unreachable', true);
      await store.recordWaiting(pending.id, 'pending', minutes(10), 1, 'upstream said 202');
      expect(await store.countWaiting()).to.deep.equal({ queued: 1, pending: 1 });
      expect((await store.listWaiting(minutes(5), 10)).map((w) => w.id)).to.deep.equal([queued.id]);
      expect((await store.listWaiting(minutes(10), 10)).map((w) => w.id)).to.deep.equal([queued.id, pending.id]);
      const [first] = await store.listWaiting(minutes(5), 10);
      expect(first).to.include({ state: 'queued', attempts: 1, possiblyIssuedTwiceUpstream: true });
      const other = await secondNode();
      const taken = await Promise.all([store.markForwarding(queued.id, lease('a', 2), NOW), other.markForwarding(queued.id, lease('b', 2), NOW)]);
      expect(taken.filter(Boolean)).to.have.length(1);
      expect(await store.countWaiting()).to.deep.equal({ received: 1, pending: 1 });
    });

    it('a due pending request is held by one node until its lease expires or it is recorded again', async () => {
      const pending = request();
      await store.recordRequest(pending);
      await store.recordWaiting(pending.id, 'pending', minutes(1), 1, 'upstream said 202');
      const other = await secondNode();
      expect(await store.markForwarding(pending.id, lease('a', 5), NOW), 'not due yet').to.equal(false);
      expect(await store.markForwarding(pending.id, lease('a', 5), minutes(1))).to.equal(true);
      expect(await other.markForwarding(pending.id, lease('b', 6), minutes(2)), 'held by a').to.equal(false);
      expect(await other.listWaiting(minutes(2), 10)).to.deep.equal([]);
      expect((await store.getRequest(pending.id))?.state).to.equal('pending');
      // Node a died: once its lease is over, b takes the request.
      expect((await other.listWaiting(minutes(5), 10)).map((w) => w.id)).to.deep.equal([pending.id]);
      expect(await other.markForwarding(pending.id, lease('b', 10), minutes(5))).to.equal(true);
      // b polls and is told to come back: the lease ends with the record, and the next poll is anyone's when due.
      await other.recordWaiting(pending.id, 'pending', minutes(6), 2, 'upstream said 202 again');
      expect(await store.markForwarding(pending.id, lease('a', 7), minutes(6))).to.equal(true);
    });

    it('requests left in flight are queued again, marked when their profile forwards upstream', async () => {
      const upstream = request({ profile: 'via-dtm' });
      const local = request({ profile: 'line-1' });
      await store.recordRequest(upstream);
      await store.recordRequest(local);
      const requeued = await store.requeueInterrupted(['via-dtm'], { now: NOW });
      expect(requeued.map((r) => [r.profile, r.possiblyIssuedTwiceUpstream]).sort()).to.deep.equal([
        ['line-1', false],
        ['via-dtm', true],
      ]);
      expect((await store.getRequest(upstream.id))?.state).to.equal('queued');
      expect((await store.getRequest(upstream.id))?.possiblyIssuedTwiceUpstream).to.equal(true);
      expect((await store.getRequest(local.id))?.possiblyIssuedTwiceUpstream).to.equal(false);
    });

    it("a node's in-flight requests are taken back when its lease expires, or at once when the same node restarts", async () => {
      const heldByA = request({ profile: 'via-dtm', lease: lease('node-a', 2) });
      const heldByB = request({ profile: 'via-dtm', lease: lease('node-b', 2) });
      await store.recordRequest(heldByA);
      await store.recordRequest(heldByB);
      const other = await secondNode();
      expect(await other.requeueInterrupted(['via-dtm'], { now: minutes(1) }), 'leases still running').to.deep.equal([]);
      const restarted = await store.requeueInterrupted(['via-dtm'], { now: minutes(1), restartedOwner: 'node-a' });
      expect(restarted.map((r) => r.id)).to.deep.equal([heldByA.id]);
      const swept = await other.requeueInterrupted(['via-dtm'], { now: minutes(2) });
      expect(swept).to.deep.equal([{ id: heldByB.id, profile: 'via-dtm', possiblyIssuedTwiceUpstream: true }]);
      expect(await store.requeueInterrupted(['via-dtm'], { now: minutes(3) }), 'taken back once').to.deep.equal([]);
      expect(await store.countWaiting()).to.deep.equal({ queued: 2 });
    });

    it("upstream health: any node's failure sets the next probe, one node claims it, any node's success clears it", async () => {
      const other = await secondNode();
      const delay = (failures: number): number => failures * 60_000;
      const first = await store.recordUpstreamFailure('via-dtm', NOW, delay);
      expect(first).to.deep.equal({ profile: 'via-dtm', failures: 1, nextProbeAt: minutes(1), probingNode: null, probeExpiresAt: null });
      // Requests failing together on either node are one step: the next probe stays where it is.
      expect(await other.recordUpstreamFailure('via-dtm', new Date(NOW.getTime() + 1000), delay)).to.deep.equal(first);
      expect(await other.listUpstreamHealth()).to.deep.equal([first]);
      expect(await store.claimUpstreamProbe('via-dtm', lease('a', 2), NOW), 'not due yet').to.equal(false);
      const claims = await Promise.all([
        store.claimUpstreamProbe('via-dtm', lease('a', 3), minutes(1)),
        other.claimUpstreamProbe('via-dtm', lease('b', 3), minutes(1)),
      ]);
      expect(claims.filter(Boolean), 'one node probes').to.have.length(1);
      const [prober, waiter] = claims[0] ? ['a', 'b'] : ['b', 'a'];
      // The prober died: the other takes the probe only once its claim has expired; a release by a non-holder does nothing.
      expect(await other.claimUpstreamProbe('via-dtm', lease(waiter, 4), minutes(2))).to.equal(false);
      await store.releaseUpstreamProbe('via-dtm', waiter);
      expect((await store.listUpstreamHealth())[0]?.probingNode).to.equal(prober);
      expect(await other.claimUpstreamProbe('via-dtm', lease(waiter, 5), minutes(3))).to.equal(true);
      // Its probe fails: the second step, counted from the failure, and the claim ends.
      expect(await other.recordUpstreamFailure('via-dtm', minutes(3), delay)).to.deep.equal({
        profile: 'via-dtm',
        failures: 2,
        nextProbeAt: minutes(5),
        probingNode: null,
        probeExpiresAt: null,
      });
      // A node that restarts probes at once, and a release ends its claim.
      await store.restartUpstreamProbes('a', minutes(4));
      expect((await other.listUpstreamHealth())[0]?.nextProbeAt).to.deep.equal(minutes(4));
      expect(await store.claimUpstreamProbe('via-dtm', lease('a', 9), minutes(4))).to.equal(true);
      await store.releaseUpstreamProbe('via-dtm', 'a');
      expect((await other.listUpstreamHealth())[0]?.probingNode).to.equal(null);
      // A success on any node clears it for all; there is nothing left to claim.
      expect(await other.recordUpstreamSuccess('via-dtm')).to.equal(true);
      expect(await store.recordUpstreamSuccess('via-dtm')).to.equal(false);
      expect(await store.listUpstreamHealth()).to.deep.equal([]);
      expect(await store.claimUpstreamProbe('via-dtm', lease('a', 10), minutes(10))).to.equal(false);
    });

    it('queries: requests by time, profile and state, both orders; certificates by expiry and profile', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        const r = request({ receivedAt: minutes(i), profile: i % 2 ? 'line-2' : 'line-1' });
        ids.push(r.id);
        await store.recordRequest(r);
        await store.recordIssued(r.id, minutes(i), issued(`0${i}`, minutes(60 * 24 * (10 + i * 20))));
      }
      expect((await store.queryRequests({})).map((r) => r.id)).to.deep.equal([...ids].reverse());
      expect((await store.queryRequests({ order: 'oldest', limit: 2 })).map((r) => r.id)).to.deep.equal(ids.slice(0, 2));
      expect((await store.queryRequests({ since: minutes(2), profile: 'line-1' })).map((r) => r.id)).to.deep.equal([ids[2]]);
      expect(await store.queryRequests({ state: 'refused' })).to.deep.equal([]);
      expect((await store.listRequests(1)).map((r) => r.id)).to.deep.equal([ids[3]]);
      const expiring = await store.queryCertificates({ notAfterFrom: NOW, notAfterTo: minutes(60 * 24 * 35) });
      expect(expiring.map((c) => c.serial)).to.deep.equal(['00', '01']);
      expect((await store.queryCertificates({ profile: 'line-2' })).map((c) => c.serial)).to.deep.equal(['01', '03']);
      expect((await store.getCertificate('03'))?.notAfter).to.equal(minutes(60 * 24 * 70).toISOString());
    });

    it('counted refusals: one row per address, code and hour, however many', async () => {
      for (let i = 0; i < 5; i++) {
        await store.countRefusal({
          address: '10.9.9.9',
          profile: 'line-1',
          operation: 'simpleenroll',
          code: 'EST_AUTH_FAILED',
          status: 401,
          reason: `try ${i}`,
          at: minutes(i),
        });
      }
      await store.countRefusal({
        address: '10.9.9.8',
        profile: 'line-1',
        operation: 'simpleenroll',
        code: 'EST_FORBIDDEN',
        status: 403,
        reason: 'outside',
        at: minutes(90),
      });
      const counts = await store.refusalCountsSince();
      expect(counts.map((c) => [c.address, c.hour, c.count, c.lastReason])).to.deep.equal([
        ['10.9.9.9', '2026-12-01T10', 5, 'try 4'],
        ['10.9.9.8', '2026-12-01T11', 1, 'outside'],
      ]);
      expect((await store.refusalCounts(1))[0]?.address).to.equal('10.9.9.8');
      expect((await store.refusalCountsSince(minutes(60))).map((c) => c.address)).to.deep.equal(['10.9.9.8']);
    });

    it('retention prunes refused requests, counted refusals and finished CSR bodies, never what waits or what was issued', async () => {
      const refused = request();
      const done = request();
      const waiting = request();
      await store.recordRefused(refused, minutes(1), 400, 'bad CSR');
      await store.recordRequest(done);
      await store.recordIssued(done.id, minutes(1), issued('0f'));
      await store.recordRequest(waiting);
      await store.recordWaiting(waiting.id, 'queued', minutes(5), 1, 'down');
      await store.countRefusal({
        address: '10.9.9.9',
        profile: 'line-1',
        operation: 'simpleenroll',
        code: 'EST_AUTH_FAILED',
        status: 401,
        reason: 'x',
        at: minutes(1),
      });
      expect(await store.prune(minutes(60))).to.equal(3);
      expect(await store.getRequest(refused.id)).to.equal(undefined);
      expect(await store.getRequest(done.id)).to.include({ state: 'issued', csr: null });
      expect(await store.findIssuedBySerial('0f')).to.not.equal(undefined);
      expect((await store.getRequest(waiting.id))?.csr).to.not.equal(null);
      const stats = await store.stats();
      expect(stats).to.include({ requests: 2, refused: 0, waiting: 1, certificates: 1, refusal_rows: 0, refusals_counted: 0 });
      expect(stats.bytes).to.be.greaterThan(0);
    });

    it('passcodes: registered values, rotation and the events of the audit trail', async () => {
      // Created a minute ago: the rotation and the disabling are stamped with the wall clock.
      const createdAt = new Date(Date.now() - 60_000).toISOString();
      await store.addPasscode(passcode({ createdAt, registeredValues: { common_name: ['sensor-17'] }, maxUses: 3, expiresAt: minutes(60).toISOString() }));
      const stored = await store.getPasscode('p1');
      expect(stored).to.deep.include({ registeredValues: { common_name: ['sensor-17'] }, maxUses: 3, expiresAt: minutes(60).toISOString(), enabled: true });
      expect(await store.rotatePasscode('p1', 'sha256:new')).to.equal(true);
      expect((await store.findPasscode('plant', 'sha256:new'))?.id).to.equal('p1');
      expect(await store.setPasscodeEnabled('p1', false)).to.equal(true);
      expect(await store.setPasscodeEnabled('nope', false)).to.equal(false);
      expect((await store.passcodeEvents()).map((e) => e.event)).to.deep.equal(['created', 'rotated', 'disabled']);
      expect((await store.listPasscodes('plant')).map((p) => p.id)).to.deep.equal(['p1']);
      expect(await store.listPasscodes('other')).to.deep.equal([]);
    });

    it('approvals: recorded with the request, decided once on any node, a rejection or expiry gives the use back', async () => {
      await store.addPasscode(passcode());
      const approved = request();
      const rejected = request();
      const expiring = request();
      for (const r of [approved, rejected, expiring]) {
        expect(await store.recordRequest(r, { passcodeId: 'p1', now: NOW }, { expiresAt: minutes(60) })).to.equal(true);
      }
      expect((await store.getPasscode('p1'))?.uses).to.equal(3);
      const found = await store.findByCsr('line-1', 'simpleenroll', approved.csrSha256!);
      expect(found).to.deep.include({ state: 'awaiting_approval', csrSha256: approved.csrSha256 });
      expect(found?.approval).to.deep.include({ state: 'pending', requestedAt: NOW.toISOString(), expiresAt: minutes(60).toISOString() });
      expect(await store.countPendingApprovals(NOW)).to.deep.equal({ 'line-1': 3 });
      expect(await store.countWaiting(), "not the retry worker's until approved").to.deep.equal({});

      const other = await secondNode();
      const approve = { approved: true as const, by: 'alice', at: minutes(1) };
      const decisions = await Promise.all([store.decideApproval(approved.id, approve), other.decideApproval(approved.id, { ...approve, by: 'bob' })]);
      expect(decisions.filter(Boolean)).to.have.length(1);
      expect((await store.getRequest(approved.id))?.state).to.equal('queued');
      const reject = {
        approved: false as const,
        by: 'alice',
        at: minutes(2),
        reason: 'unknown device',
        refusal: 'request rejected by an administrator: unknown device',
      };
      expect(await other.decideApproval(rejected.id, reject)).to.equal(true);
      expect(await store.getRequest(rejected.id)).to.include({ state: 'refused', status: 403, reason: reject.refusal });
      expect((await store.getApproval(rejected.id))?.decidedBy).to.equal('alice');
      expect(await store.expireApprovals(minutes(61), 'approval expired')).to.equal(1);
      expect(await store.getRequest(expiring.id)).to.include({ state: 'refused', reason: 'approval expired' });
      expect((await store.findByCsr('line-1', 'simpleenroll', expiring.csrSha256!))?.approval?.state).to.equal('expired');
      expect((await store.getPasscode('p1'))?.uses, 'rejected and expired gave their uses back').to.equal(1);
      expect((await store.queryApprovals({ state: 'pending' })).length).to.equal(0);
      expect((await store.approvalsSince()).map((a) => a.state).sort()).to.deep.equal(['approved', 'expired', 'rejected']);
    });

    it('a relayed request (fullcmc) is finished in one write, and the store checks itself sound', async () => {
      const relayed = request({ operation: 'fullcmc', csr: undefined });
      await store.recordRelayed(relayed, minutes(1), 200, 'fullcmc relayed; the upstream answered 200');
      expect(await store.getRequest(relayed.id)).to.include({ state: 'issued', status: 200 });
      expect(await store.countWaiting()).to.deep.equal({});
      expect(await store.check()).to.deep.equal([]);
    });

    it('the durable cache keeps the latest value', async () => {
      await store.putCached('cacerts:line-1', Buffer.from('one'), NOW);
      await store.putCached('cacerts:line-1', Buffer.from('two'), minutes(1));
      expect((await (await secondNode()).getCached('cacerts:line-1'))?.toString()).to.equal('two');
      expect(await store.getCached('nothing')).to.equal(undefined);
    });

    it("a column a newer node's migration adds under a running node breaks none of the enrollment path's statements", async () => {
      const enroll = async (serial: string): Promise<void> => {
        const r = request();
        expect(await store.recordRequest(r, { passcodeId: 'p1', now: NOW })).to.equal(true);
        expect((await store.findByCsr('line-1', 'simpleenroll', r.csrSha256!))?.id).to.equal(r.id);
        expect(await store.markForwarding(r.id, lease('node-a', 5), NOW)).to.equal(false);
        await store.recordIssued(r.id, minutes(1), issued(serial));
        expect((await store.findIssuedBySerial(serial))?.profile).to.equal('line-1');
        expect((await store.getIssuedCertificate(r.id))?.toString()).to.equal(`certificate ${serial}`);
      };
      const added = await store.addPasscode(passcode()).then(() => store.getPasscode('p1'));
      // Every statement of an enrollment runs once, so a store that prepares them has them prepared.
      expect((await store.findPasscode('plant', added!.hash))?.id).to.equal('p1');
      await enroll('0c01');
      await backend.alter(
        location,
        ['passcodes', 'requests', 'certificates', 'approvals'].map((table) => `ALTER TABLE ${table} ADD COLUMN added_by_a_newer_node text;`).join('\n'),
      );
      expect((await store.findPasscode('plant', added!.hash))?.uses).to.equal(1);
      await enroll('0c02');
      expect((await store.getPasscode('p1'))?.uses).to.equal(2);
    });

    it('the node registry: a name is claimed once, replaced only over the instance read, seen and stopped by its holder alone', async () => {
      const node = (instance: string, at: Date) => ({
        name: 'node-a',
        instance,
        host: 'plant-1',
        machineId: 'm-1',
        pid: 4242,
        version: '1.2.3',
        startedAt: at.toISOString(),
        lastSeenAt: at.toISOString(),
        stoppedAt: null,
      });
      expect(await store.getNode('node-a')).to.equal(undefined);
      const other = await secondNode();
      const claims = await Promise.all([store.claimNode(node('i-1', NOW), undefined), other.claimNode(node('i-2', NOW), undefined)]);
      expect(claims.filter(Boolean)).to.have.length(1);
      const holder = (await store.getNode('node-a'))!;
      const loser = holder.instance === 'i-1' ? 'i-2' : 'i-1';
      expect(holder).to.deep.include({ host: 'plant-1', machineId: 'm-1', pid: 4242, version: '1.2.3', stoppedAt: null });
      expect(await store.nodeSeen('node-a', loser, minutes(1))).to.equal(false);
      expect(await store.nodeSeen('node-a', holder.instance, minutes(1))).to.equal(true);
      expect((await other.getNode('node-a'))?.lastSeenAt).to.equal(minutes(1).toISOString());
      // Replacing over an instance that is no longer the holder fails: the caller reads again.
      expect(await store.claimNode(node('i-3', minutes(2)), loser)).to.equal(false);
      await store.nodeStopped('node-a', holder.instance, minutes(3));
      expect((await store.getNode('node-a'))?.stoppedAt).to.equal(minutes(3).toISOString());
      expect(await other.claimNode(node('i-3', minutes(4)), holder.instance)).to.equal(true);
      expect(await store.listNodes()).to.deep.equal([{ ...node('i-3', minutes(4)), stoppedAt: null }]);
    });
  });
}
