import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { forgeRsaCsr, opensslCsr } from '../helpers/csr.js';
import { curl } from '../helpers/clients.js';
import { httpsRequest } from '../helpers/https.js';
import { adminCli, storeStats, type CertificateJson, type RequestJson } from '../helpers/admin-cli.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/** Issue #10: refused requests must not fill the disk, and old rows go. */
describe('a bounded store: refusals before authentication counted, retention', function () {
  this.timeout(60_000);
  let ra: TestEstRa;
  let cli: ReturnType<typeof adminCli>;

  before(async () => {
    ra = await startEstRa({
      editConfig: (yaml) =>
        yaml
          .replace(/allowed_key_types: \[.*\]/, 'allowed_key_types: [p_256]')
          // The flood below is 300 refusals in well under a minute: lift the per-address budget to see them stored.
          .replace(/refusals_per_minute_per_address: \d+/, 'refusals_per_minute_per_address: 100000'),
    });
    cli = adminCli(join(ra.dir, 'config.yaml'));
  });
  after(async () => ra.close());

  it('#10 - ok 300 wrong passcodes from one address take one row, not 300', async () => {
    const before = await storeStats(ra);
    const device = await opensslCsr(ra.dir, 'flood');
    for (let i = 0; i < 300; i++) {
      const answer = await httpsRequest(`${ra.url}/.well-known/est/simpleenroll`, {
        method: 'POST',
        headers: { Authorization: `Basic ${Buffer.from(`:wrong-${i}`).toString('base64')}`, 'Content-Type': 'application/pkcs10' },
        body: device.csrPem,
        ca: ra.rootCaFile,
      });
      expect(answer.status).to.equal(401);
    }
    const after = await storeStats(ra);
    expect(after.requests - before.requests, 'no request rows').to.equal(0);
    expect(after.refusal_rows - before.refusal_rows).to.equal(1);
    expect(after.refusals_counted - before.refusals_counted).to.equal(300);
    expect(after.refusals[0]).to.include({
      peer_address: '127.0.0.1',
      profile: 'demo',
      operation: 'simpleenroll',
      code: 'EST_AUTH_FAILED',
      status: 401,
      count: 300,
    });
    const printed = await cli.text('store', 'stats', '--refusals', '1');
    expect(printed).to.match(/refusals before authentication: \d+ counted in \d+ rows/);
    expect(printed).to.match(/127\.0\.0\.1 demo\/simpleenroll 401 EST_AUTH_FAILED ×300: authentication failed: unknown or disabled passcode/);
  });

  it('#10 - ok retention removes old refused requests and CSR bodies, never an issued certificate or the renewal it allows', async () => {
    const refused = forgeRsaCsr(ra.dir, 'old-refused');
    expect((await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${refused.csrPemFile}`])).status).to.equal(403);
    const device = await opensslCsr(ra.dir, 'old-issued');
    expect((await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`])).status).to.equal(200);
    const before = await storeStats(ra);
    // Retention as it will run 91 days from now, by hand beside the running est-ra, as an admin may.
    const [pruned] = await cli.json<{ rows: number }>('store', 'prune', '--before', new Date(Date.now() + 91 * 86_400_000).toISOString());
    expect(pruned!.rows).to.be.greaterThan(0);
    const after = await storeStats(ra);
    expect(after.refused, 'refused requests gone').to.equal(0);
    expect(after.certificates, 'issued certificates kept').to.equal(before.certificates);
    const issued = (await cli.json<RequestJson>('requests', 'list', '--outcome', 'issued', '--limit', '10'))[0];
    expect((await cli.json<RequestJson>('requests', 'show', issued!.id))[0]?.csr, 'the CSR body of a finished request is gone').to.equal(null);
    expect(await cli.json<CertificateJson>('certificates', 'show', issued!.serial!)).to.have.length(1);
  });
});
