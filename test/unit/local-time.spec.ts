import { expect } from 'chai';
import { parseAdminTime, parseDuration } from '../../src/cli/local-time.js';

/** Dates as an admin types them, read in a time zone across daylight-saving changes (Intl's tz data is the reference). */
describe('cli/local-time: dates typed on the command line', () => {
  const at = (value: string, zone: string, endOfDay = true): string | undefined => parseAdminTime(value, zone, endOfDay)?.toISOString();

  it('ok a bare date ends at the next day 00:00 there, on both sides of a daylight-saving change', () => {
    expect(at('2026-03-28', 'Europe/Berlin')).to.equal('2026-03-28T23:00:00.000Z');
    // Berlin moves to CEST on 2026-03-29 at 01:00 UTC: that day ends at 00:00 CEST.
    expect(at('2026-03-29', 'Europe/Berlin')).to.equal('2026-03-29T22:00:00.000Z');
    // and back to CET on 2026-10-25: a 25-hour day.
    expect(at('2026-10-25', 'Europe/Berlin')).to.equal('2026-10-25T23:00:00.000Z');
    expect(at('2026-12-31', 'UTC')).to.equal('2027-01-01T00:00:00.000Z');
    expect(at('2026-06-30', 'America/New_York')).to.equal('2026-07-01T04:00:00.000Z');
    expect(at('2026-06-30', 'Asia/Kolkata')).to.equal('2026-06-30T18:30:00.000Z');
  });

  it('ok --since: a bare date is its start; a wall-clock time is that time there; an offset is exact', () => {
    expect(at('2026-07-01', 'Europe/Berlin', false)).to.equal('2026-06-30T22:00:00.000Z');
    expect(at('2026-07-01T08:15', 'Europe/Berlin')).to.equal('2026-07-01T06:15:00.000Z');
    expect(at('2026-07-01 08:15:30', 'Europe/Berlin')).to.equal('2026-07-01T06:15:30.000Z');
    expect(at('2026-07-01T08:15:00+05:30', 'Europe/Berlin')).to.equal('2026-07-01T02:45:00.000Z');
    expect(at('2026-07-01T08:15:00Z', 'Asia/Tokyo')).to.equal('2026-07-01T08:15:00.000Z');
  });

  it('ok a wall-clock time a spring-forward skips lands an hour later', () => {
    // 02:30 does not exist in Berlin on 2026-03-29: it is read as 03:30 CEST.
    expect(at('2026-03-29T02:30', 'Europe/Berlin')).to.equal('2026-03-29T01:30:00.000Z');
  });

  it('fail impossible or malformed dates', () => {
    for (const value of ['2026-02-30', '2026-13-01', '2026-07-01T24:00', '31.03.2027', 'tomorrow', '2026-07-01T08:15+0']) {
      expect(at(value, 'UTC'), value).to.equal(undefined);
    }
  });

  it('ok durations', () => {
    expect(parseDuration('90m')).to.equal(90 * 60_000);
    expect(parseDuration('24h')).to.equal(86_400_000);
    expect(parseDuration('30d')).to.equal(30 * 86_400_000);
    expect(parseDuration('2w')).to.equal(14 * 86_400_000);
    expect(parseDuration('30')).to.equal(undefined);
    expect(parseDuration('-1d')).to.equal(undefined);
  });
});
