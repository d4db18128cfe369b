import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig } from '../helpers/config.js';
import { opensslCsr } from '../helpers/csr.js';
import { curl } from '../helpers/clients.js';
import { createPasscode } from '../helpers/passcodes.js';
import { mustRun } from '../helpers/run.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/** Issue #11: /metrics, /healthz and /readyz as curl reads them, and the request id a device sees. */
describe('metrics, health and the request id (#11)', () => {
  let ra: TestEstRa;
  before(async () => {
    ra = await startEstRa({ editConfig: (yaml) => editConfig(yaml, (config) => (config.ops = { listen: { host: '127.0.0.1', port: 0 } })) });
  });
  after(async () => ra.close());

  const ops = async (path: string): Promise<{ status: number; body: string }> => {
    const answer = await mustRun('curl', ['-sS', '-w', '\n%{http_code}', `${ra.server.opsUrl!}${path}`]);
    const at = answer.lastIndexOf('\n');
    return { status: Number(answer.slice(at + 1)), body: answer.slice(0, at) };
  };

  it('ok /metrics: requests by outcome, latency, days left on the TLS and CA certificates, passcode uses', async () => {
    await createPasscode(ra, '--max-uses', '1');
    const device = await opensslCsr(ra.dir, 'obs-1');
    expect((await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`])).status).to.equal(200);
    // The same CSR again: answered with the same certificate, counted as replayed.
    expect((await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`])).status).to.equal(200);
    expect((await curl(ra, '/simpleenroll', ['--user', ':wrong', ...PKCS10, '--data-binary', `@${device.csrPemFile}`])).status).to.equal(401);
    const { status, body } = await ops('/metrics');
    expect(status).to.equal(200);
    expect(body).to.match(/est_ra_requests_total\{profile="demo",operation="simpleenroll",status="200",outcome="ok"\} 1\n/);
    expect(body).to.match(/est_ra_requests_total\{profile="demo",operation="simpleenroll",status="200",outcome="replayed"\} 1\n/);
    expect(body).to.match(/est_ra_requests_total\{profile="demo",operation="simpleenroll",status="401",outcome="refused"\} 1\n/);
    expect(body).to.match(/est_ra_request_duration_seconds_bucket\{le="0\.5",operation="simpleenroll",outcome="ok"\} 1\n/);
    // The demo's TLS certificate and CAs: days left, as a number an alert can compare.
    const days = (kind: string): number[] =>
      [...body.matchAll(new RegExp(`est_ra_certificate_days_left\\{kind="${kind}",[^}]*\\} ([0-9.]+)`, 'g'))].map((m) => Number(m[1]));
    expect(days('tls')).to.have.length(1);
    expect(days('tls')[0]).to.be.greaterThan(300);
    expect(days('ca').length).to.be.at.least(2);
    expect(body).to.match(/est_ra_passcode_uses\{policy="demo"\} 1\n/);
    expect(body).to.match(/est_ra_passcodes\{policy="demo",status="enabled"\} 2\n/);
  });

  it('ok /healthz is alive; /readyz is ready with the store and every certificate valid, and says so in JSON', async () => {
    expect(await ops('/healthz')).to.deep.equal({ status: 200, body: 'ok\n' });
    const ready = await ops('/readyz');
    expect(ready.status).to.equal(200);
    expect(JSON.parse(ready.body)).to.deep.equal({ ready: true, store: 'ok', certificates: 'ok', upstreams: {} });
    expect((await ops('/nothing')).status).to.equal(404);
  });

  it('ok every enroll answer names its request (X-Request-Id); a retry of the same CSR carries the first one, in the answer and the log', async () => {
    const device = await opensslCsr(ra.dir, 'obs-id');
    const enroll = async (): Promise<string> => {
      const headers = join(ra.dir, 'obs-id.headers');
      const answer = await curl(ra, '/simpleenroll', ['-D', headers, '--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
      expect(answer.status).to.equal(200);
      return /^x-request-id: (\S+)\r?$/im.exec(await mustRun('cat', [headers]))![1]!;
    };
    const first = await enroll();
    expect(await enroll()).to.equal(first);
    const lines = ra.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.message === 'est request' && line.status === 200);
    const retry = lines.at(-1)!;
    expect(retry).to.include({ request_id: first, outcome: 'issued earlier' });
    expect(retry.id).not.to.equal(first);
    expect(lines.find((line) => line.id === first)).to.include({ outcome: 'issued' });
  });

  it('ok a refusal est-ra means is logged at warn with its reason; the bare request for the Basic challenge at info', async () => {
    const device = await opensslCsr(ra.dir, 'obs-warn');
    expect((await curl(ra, '/simpleenroll', [...PKCS10, '--data-binary', `@${device.csrPemFile}`])).status).to.equal(401);
    expect((await curl(ra, '/simpleenroll', ['--user', ':wrong', ...PKCS10, '--data-binary', `@${device.csrPemFile}`])).status).to.equal(401);
    const lines = ra.logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.message === 'est request' && line.status === 401)
      .slice(-2);
    expect(lines.map((line) => [line.level, line.outcome])).to.deep.equal([
      ['info', 'authentication required'],
      ['warn', 'authentication failed: unknown or disabled passcode'],
    ]);
    expect(ra.logs.join('\n')).not.to.contain('internal error');
  });
});
