import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editProfile } from '../helpers/config.js';
import { opensslCsr, type KeyAndCsr } from '../helpers/csr.js';
import { certsFromP7, curl } from '../helpers/clients.js';
import { mustRun } from '../helpers/run.js';
import { latestRequest } from '../helpers/admin-cli.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];
const DAY = 86_400_000;

/** renewal_settings at their boundaries, on an injected clock (no sleeping). */
describe('renewal_settings: renew_valid_cert, renew_expired_cert, renewal_key_pair', function () {
  this.timeout(60_000);
  let ra: TestEstRa;
  let clock = Date.now();
  let device: KeyAndCsr;
  let cert: string;
  let notAfter: number;

  before(async () => {
    ra = await startEstRa({
      now: () => new Date(clock),
      editConfig: (yaml) =>
        editProfile(yaml, 'demo', (profile) => {
          profile.renewal_settings = { renew_valid_cert: 30, renew_expired_cert: 10, renewal_key_pair: 'new_key_required' };
        }),
    });
    device = await opensslCsr(ra.dir, 'renew-device', { subject: '/CN=renew-device' });
    const answer = await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    cert = await certsFromP7(ra.dir, answer.body, 'renew-device-cert');
    notAfter = Date.parse((await mustRun('openssl', ['x509', '-in', cert, '-noout', '-enddate'])).trim().replace('notAfter=', ''));
  });
  after(async () => ra.close());

  const renewAt = async (at: number, csr: KeyAndCsr): Promise<{ status: number; body: string }> => {
    clock = at;
    return curl(ra, '/simplereenroll', ['--cert', cert, '--key', device.keyFile, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`]);
  };
  const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

  it('fail one second before the window opens (30 days before expiry)', async () => {
    const next = await opensslCsr(ra.dir, 'renew-early', { subject: '/CN=renew-device' });
    const answer = await renewAt(notAfter - 30 * DAY - 1000, next);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal(`403 renewal opens 30 days before expiry: ${day(notAfter - 30 * DAY)}\n`);
  });

  it('ok exactly when the window opens, with a new key', async () => {
    const next = await opensslCsr(ra.dir, 'renew-open', { subject: '/CN=renew-device' });
    expect((await renewAt(notAfter - 30 * DAY, next)).status).to.equal(200);
  });

  it('fail the same key when a new key pair is required', async () => {
    const sameKey = await opensslCsr(ra.dir, 'renew-same', { subject: '/CN=renew-device', keyArgs: ['-key', device.keyFile] });
    const answer = await renewAt(notAfter - DAY, sameKey);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal("403 renewal needs a new key pair: the CSR reuses the certificate's key\n");
  });

  it('ok an expired certificate within 10 days after expiry', async () => {
    const next = await opensslCsr(ra.dir, 'renew-late', { subject: '/CN=renew-device' });
    expect((await renewAt(notAfter + 10 * DAY, next)).status).to.equal(200);
  });

  it('fail one second after the expired window closes, recorded with the reason', async () => {
    const next = await opensslCsr(ra.dir, 'renew-closed', { subject: '/CN=renew-device' });
    const answer = await renewAt(notAfter + 10 * DAY + 1000, next);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal(`403 renewal closed 10 days after expiry: ${day(notAfter + 10 * DAY)}\n`);
    const latest = await latestRequest(ra);
    expect(latest).to.include({ operation: 'simplereenroll', outcome: 'refused', status: 403 });
  });
});

describe('usage restrictions: operational hours and dates', function () {
  this.timeout(60_000);
  let ra: TestEstRa;
  let clock = Date.now();
  let device: KeyAndCsr;

  before(async () => {
    ra = await startEstRa({
      now: () => new Date(clock),
      editConfig: (yaml) =>
        editProfile(yaml, 'demo', (profile) => {
          profile.usage_restrictions = {
            time_zone: 'Europe/Berlin',
            operational_hours: { monday: ['06:00-12:00', '13:00-22:00'], tuesday: ['06:00-22:00'] },
            operational_dates: { valid_from: '2026-01-01', valid_to: '2027-12-31' },
          };
        }),
    });
    device = await opensslCsr(ra.dir, 'hours-device');
  });
  after(async () => ra.close());

  const enrollAt = async (iso: string): Promise<{ status: number; body: string }> => {
    clock = Date.parse(iso);
    return curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
  };

  const cases: [string, string, number, string?][] = [
    ['Monday 06:00 Berlin (05:00 UTC in winter)', '2026-11-30T05:00:00Z', 200],
    ['Monday 05:59 Berlin', '2026-11-30T04:59:00Z', 403, '403 outside operational hours (Europe/Berlin): opens today 06:00\n'],
    ['Monday 12:30 Berlin, the lunch gap', '2026-11-30T11:30:00Z', 403, '403 outside operational hours (Europe/Berlin): opens today 13:00\n'],
    ['Tuesday 21:59 Berlin', '2026-12-01T20:59:00Z', 200],
    ['Wednesday 10:00 Berlin', '2026-12-02T09:00:00Z', 403, '403 outside operational hours (Europe/Berlin): opens monday 06:00\n'],
    ['Monday 06:00 Berlin in summer (04:00 UTC)', '2027-06-07T04:00:00Z', 200],
    ['before valid_from', '2025-12-29T08:00:00Z', 403, '403 profile not in operation yet: opens 2026-01-01\n'],
    ['after valid_to', '2028-01-03T08:00:00Z', 403, '403 profile out of operation since 2027-12-31\n'],
  ];
  for (const [name, at, status, text] of cases) {
    it(`${status === 200 ? 'ok' : 'fail'} ${name}`, async () => {
      const answer = await enrollAt(at);
      expect(answer.status).to.equal(status);
      if (text) expect(answer.body).to.equal(text);
    });
  }
});
