import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { forgeRsaCsr, opensslCsr } from '../helpers/csr.js';
import { curl } from '../helpers/clients.js';
import { httpsRequest } from '../helpers/https.js';
import { mustRun } from '../helpers/run.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Issue #10: refused requests must not fill the disk, and old rows go. */
describe('a bounded store: refusals before authentication counted, retention', function () {
  this.timeout(60_000);
  let ra: TestEstRa;

  before(async () => {
    ra = await startEstRa({
      editConfig: (yaml) =>
        yaml
          .replace(/allowed_key_types: \[.*\]/, 'allowed_key_types: [p_256]')
          // The flood below is 300 refusals in well under a minute: lift the per-address budget to see them stored.
          .replace(/refusals_per_minute_per_address: \d+/, 'refusals_per_minute_per_address: 100000'),
    });
  });
  after(async () => ra.close());

  it('#10 - ok 300 wrong passcodes from one address take one row, not 300', async () => {
    const before = await ra.server.store.stats();
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
    const after = await ra.server.store.stats();
    expect(after.requests - before.requests, 'no request rows').to.equal(0);
    expect(after.refusal_rows - before.refusal_rows).to.equal(1);
    expect(after.refusals_counted - before.refusals_counted).to.equal(300);
    const [counted] = await ra.server.store.refusalCounts(1);
    expect(counted).to.include({ address: '127.0.0.1', profile: 'demo', operation: 'simpleenroll', code: 'EST_AUTH_FAILED', status: 401, count: 300 });
    const printed = await mustRun(process.execPath, [CLI, 'store', 'stats', '--config', join(ra.dir, 'config.yaml'), '--refusals', '1']);
    expect(printed).to.match(/refusals before authentication: \d+ counted in \d+ rows/);
    expect(printed).to.match(/127\.0\.0\.1 demo\/simpleenroll 401 EST_AUTH_FAILED ×300: authentication failed: unknown or disabled passcode/);
  });

  it('#10 - ok retention removes old refused requests and CSR bodies, never an issued certificate or the renewal it allows', async () => {
    const refused = forgeRsaCsr(ra.dir, 'old-refused');
    expect((await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${refused.csrPemFile}`])).status).to.equal(403);
    const device = await opensslCsr(ra.dir, 'old-issued');
    expect((await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`])).status).to.equal(200);
    const before = await ra.server.store.stats();
    expect(await ra.server.store.prune(new Date(Date.now() + 91 * 86_400_000))).to.be.greaterThan(0);
    const after = await ra.server.store.stats();
    expect(after.refused, 'refused requests gone').to.equal(0);
    expect(after.certificates, 'issued certificates kept').to.equal(before.certificates);
    const issued = (await ra.server.store.listRequests(10)).find((r) => r.state === 'issued');
    expect(issued?.csr, 'the CSR body of a finished request is gone').to.equal(null);
    expect(await ra.server.store.findIssuedBySerial(issued!.serial!)).to.not.equal(undefined);
  });
});
