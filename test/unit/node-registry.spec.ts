import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { joinCluster, NodeNameTakenError } from '../../src/enrollment/node.js';
import { openStore } from '../../src/store/open.js';
import type { NodeRecord, Store } from '../../src/store/types.js';

/**
 * When a process may take a node name from its previous holder: only when
 * that one is gone (stopped, unseen for a lease, or a dead process on this
 * machine). Two live processes under one name would each take the other's
 * in-flight requests as their own at a restart, and forward them twice.
 */
describe('joining the cluster under a node name', () => {
  const LEASE_MS = 120_000;
  const T0 = new Date('2026-12-01T10:00:00.000Z');
  const later = (ms: number): Date => new Date(T0.getTime() + ms);
  let dir: string;
  let store: Store;
  const process_ = (instance: string, at: Date, where: Partial<NodeRecord> = {}): NodeRecord => ({
    name: 'line-3',
    instance,
    host: 'plant-1',
    machineId: 'machine-1',
    pid: 100,
    version: '0.1.0',
    startedAt: at.toISOString(),
    lastSeenAt: at.toISOString(),
    stoppedAt: null,
    ...where,
  });
  const running = (): boolean => true;
  const gone = (): boolean => false;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-nodes-'));
    store = await openStore({ sqlite: { path: join(dir, 'est-ra.db') } });
    await joinCluster(store, process_('first', T0), LEASE_MS, T0, running);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fail a live process on another machine holds the name: refused, naming its host, pid, version and when it was seen', async () => {
    const refused = await joinCluster(
      store,
      process_('second', later(5_000), { host: 'plant-2', machineId: 'machine-2', pid: 200 }),
      LEASE_MS,
      later(5_000),
      gone,
    ).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).to.be.instanceOf(NodeNameTakenError);
    expect((refused as Error).message).to.equal(
      "another est-ra is running as node 'line-3' on this store (host plant-1, pid 100, version 0.1.0, seen 5 s ago): give each node its own cluster.node_name, or stop that one first",
    );
    expect((await store.getNode('line-3'))?.instance).to.equal('first');
  });

  it('fail a live process on this machine (its pid runs) holds the name: refused', async () => {
    const second = process_('second', later(1_000), { pid: 101 });
    const refused = await joinCluster(store, second, LEASE_MS, later(1_000), running).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).to.be.instanceOf(NodeNameTakenError);
  });

  it('ok the holder ran on this machine and its process is gone (kill -9, restarted at once by systemd): replaced', async () => {
    await joinCluster(store, process_('restarted', later(1_000), { pid: 101 }), LEASE_MS, later(1_000), gone);
    expect((await store.getNode('line-3'))?.instance).to.equal('restarted');
  });

  it('ok the holder ran on this machine under the pid this process has now (a container restarted, est-ra pid 1 again): replaced', async () => {
    await joinCluster(store, process_('container', later(1_000)), LEASE_MS, later(1_000), running);
    expect((await store.getNode('line-3'))?.instance).to.equal('container');
  });

  it('ok the holder stopped cleanly, or has not been seen for a whole lease: replaced from any machine', async () => {
    await store.nodeStopped('line-3', 'first', later(1_000));
    await joinCluster(store, process_('after-stop', later(2_000), { host: 'plant-2', machineId: 'machine-2' }), LEASE_MS, later(2_000), running);
    expect((await store.getNode('line-3'))?.instance).to.equal('after-stop');
    const silent = later(2_000 + LEASE_MS + 1);
    await joinCluster(store, process_('after-silence', silent, { host: 'plant-3', machineId: 'machine-3' }), LEASE_MS, silent, running);
    expect(await store.getNode('line-3')).to.deep.include({ instance: 'after-silence', host: 'plant-3', stoppedAt: null });
  });
});
