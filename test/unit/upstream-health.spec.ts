import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { UpstreamHealth } from '../../src/enrollment/upstream-health.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/types.js';

describe('upstream health: one probe, exponential backoff with jitter', () => {
  const at = (ms: number): Date => new Date(Date.UTC(2026, 10, 25) + ms);
  let dir: string;
  let store: Store;
  const node = (name: string): UpstreamHealth => new UpstreamHealth(store, { name, leaseMs: 30_000, instance: name });

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-health-'));
    store = await openStore({ sqlite: { path: join(dir, 'est-ra.db') } });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ok requests failing together at an outage are one step of the backoff, not one each', async () => {
    const health = node('a');
    const first = (await health.failed('line-1', at(0))).getTime() - at(0).getTime();
    expect(first).to.be.within(500, 1000);
    for (let i = 1; i < 32; i++) expect((await health.failed('line-1', at(i))).getTime()).to.equal(at(first).getTime());
    // The probe fails: the next wait is the second step (1-2 s), not the 60 s ceiling.
    const second = (await health.failed('line-1', at(first))).getTime() - at(first).getTime();
    expect(second).to.be.within(1000, 2000);
  });

  it('ok a success clears the profile; other profiles are unaffected', async () => {
    const health = node('a');
    await health.failed('line-1', at(0));
    expect(health.probeDueAt('line-2')).to.equal(undefined);
    expect(await health.succeeded('line-1')).to.equal(true);
    expect(health.probeDueAt('line-1')).to.equal(undefined);
    expect(await health.succeeded('line-1')).to.equal(false);
    expect(await store.listUpstreamHealth()).to.deep.equal([]);
  });

  it('ok the wait never exceeds the 60 s ceiling', async () => {
    const health = node('a');
    let now = 0;
    for (let i = 0; i < 20; i++) now = (await health.failed('line-1', at(now))).getTime() - at(0).getTime();
    const wait = (await health.failed('line-1', at(now))).getTime() - at(now).getTime();
    expect(wait).to.be.within(30_000, 60_000);
  });

  it("ok another node's failure and recovery reach this node's copy at its refresh, and one of them claims the probe", async () => {
    const [a, b] = [node('a'), node('b')];
    const due = await a.failed('line-1', at(0));
    await a.refresh();
    expect(b.probeDueAt('line-1'), 'not read yet').to.equal(undefined);
    await b.refresh();
    expect(b.probeDueAt('line-1')).to.equal(due.getTime());
    expect(await b.claimProbe('line-1', due)).to.equal(true);
    expect(await a.claimProbe('line-1', due), 'b holds it').to.equal(false);
    expect(await b.succeeded('line-1')).to.equal(true);
    expect(b.probeDueAt('line-1')).to.equal(undefined);
    // a refused claim makes a's next refresh read again, however recent its last one was.
    await a.refresh();
    expect(a.probeDueAt('line-1')).to.equal(undefined);
  });
});
