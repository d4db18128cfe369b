import { expect } from 'chai';
import { UpstreamHealth } from '../../src/enrollment/upstream-health.js';

describe('upstream health: one probe, exponential backoff with jitter', () => {
  const at = (ms: number): Date => new Date(Date.UTC(2026, 10, 25) + ms);

  it('ok requests failing together at an outage are one step of the backoff, not one each', () => {
    const health = new UpstreamHealth();
    const first = health.failed('line-1', at(0)).getTime() - at(0).getTime();
    expect(first).to.be.within(500, 1000);
    for (let i = 1; i < 32; i++) expect(health.failed('line-1', at(i)).getTime()).to.equal(at(first).getTime());
    // The probe fails: the next wait is the second step (1-2 s), not the 60 s ceiling.
    const second = health.failed('line-1', at(first)).getTime() - at(first).getTime();
    expect(second).to.be.within(1000, 2000);
  });

  it('ok a success clears the profile; other profiles are unaffected', () => {
    const health = new UpstreamHealth();
    health.failed('line-1', at(0));
    expect(health.probeDueAt('line-2')).to.equal(undefined);
    expect(health.succeeded('line-1')).to.equal(true);
    expect(health.probeDueAt('line-1')).to.equal(undefined);
    expect(health.succeeded('line-1')).to.equal(false);
  });

  it('ok the wait never exceeds the 60 s ceiling', () => {
    const health = new UpstreamHealth();
    let now = 0;
    for (let i = 0; i < 20; i++) now = health.failed('line-1', at(now)).getTime() - at(0).getTime();
    const wait = health.failed('line-1', at(now)).getTime() - at(now).getTime();
    expect(wait).to.be.within(30_000, 60_000);
  });
});
