import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig } from '../helpers/config.js';
import { opensslCsr, opensslIssue, opensslSelfSigned } from '../helpers/csr.js';
import { certsFromP7, curl, opensslVerify, x509Field } from '../helpers/clients.js';
import { latestRefusal, latestRequest } from '../helpers/admin-cli.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];
const CA_EXTENSIONS = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'];
/** id-kp-cmcRA (RFC 6402 §2.10), the mark of an RA certificate in RFC 7030 §3.7. */
const CMC_RA = '1.3.6.1.5.5.7.3.28';

/**
 * A line RA (another EST server in front of est-ra) authenticates its devices
 * itself and enrolls for them with its own certificate, which carries
 * id-kp-cmcRA and comes from a CA the admin lists as downstream_ra_cas.
 */
describe('downstream RAs (id-kp-cmcRA) enrolling on behalf of devices', function () {
  this.timeout(60_000);
  let dir: string;
  let ra: TestEstRa;
  const certs: Record<string, { certFile: string; keyFile: string }> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-downstream-'));
    const raCa = await opensslSelfSigned(dir, 'ra-ca', { subject: '/O=Plant/CN=Plant RA CA', days: 3650, addext: CA_EXTENSIONS });
    const otherCa = await opensslSelfSigned(dir, 'other-ca', { subject: '/O=Elsewhere/CN=Other CA', days: 3650, addext: CA_EXTENSIONS });
    const issue = async (name: string, ca: { certFile: string; keyFile: string }, eku: string): Promise<void> => {
      certs[name] = await opensslIssue(dir, name, {
        subject: `/O=Plant/CN=${name}`,
        caFile: ca.certFile,
        caKeyFile: ca.keyFile,
        extensions: ['basicConstraints=CA:FALSE', `extendedKeyUsage=${eku}`],
      });
    };
    await issue('line-3 RA', raCa, `clientAuth,${CMC_RA}`);
    await issue('not an RA', raCa, 'clientAuth');
    await issue('rogue RA', otherCa, `clientAuth,${CMC_RA}`);
    ra = await startEstRa({
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          config.authentication_policies = { demo: { downstream_ra_cas: [raCa.certFile] }, 'no-ras': {} };
          const profiles = config.profiles as Record<string, Record<string, unknown>>;
          profiles.plain = { ...profiles.demo, default: false, labels: ['plain'], authentication_policy: 'no-ras' };
        }),
    });
  });
  after(async () => {
    await ra.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = async (path: string, as: string, subject: string): Promise<{ status: number; body: string }> => {
    const csr = await opensslCsr(ra.dir, `ds-${Math.random().toString(16).slice(2)}`, { subject });
    return curl(ra, path, ['--cert', certs[as]!.certFile, '--key', certs[as]!.keyFile, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`]);
  };

  it("ok the RA enrolls a device without the device's passcode; both identities are recorded and logged", async () => {
    const answer = await post('/simpleenroll', 'line-3 RA', '/CN=sensor-17');
    expect(answer.status, answer.body).to.equal(200);
    const cert = await certsFromP7(ra.dir, answer.body, 'ds-sensor');
    expect(await opensslVerify(ra, cert)).to.contain(': OK');
    expect(await x509Field(cert, '-subject')).to.equal('subject=CN=sensor-17');
    const latest = await latestRequest(ra);
    expect(latest?.principal).to.deep.include({ kind: 'ra', subject: 'O=Plant, CN=line-3 RA', issuer: 'O=Plant, CN=Plant RA CA', device: 'CN=sensor-17' });
    const line = ra.logs.map((l) => JSON.parse(l) as Record<string, unknown>).findLast((l) => l.operation === 'simpleenroll');
    expect(line?.principal).to.match(/^ra:[0-9a-f]+ O=Plant, CN=line-3 RA for CN=sensor-17$/);
  });

  it("ok the RA renews for a device: the identity is the CSR's, which the RA vouches for", async () => {
    const answer = await post('/simplereenroll', 'line-3 RA', '/CN=sensor-17');
    expect(answer.status, answer.body).to.equal(200);
    expect(await x509Field(await certsFromP7(ra.dir, answer.body, 'ds-renewed'), '-subject')).to.equal('subject=CN=sensor-17');
    const latest = await latestRequest(ra);
    expect(latest).to.deep.include({ operation: 'simplereenroll', outcome: 'issued' });
    expect(latest?.principal).to.deep.include({ kind: 'ra', device: 'CN=sensor-17' });
  });

  it('fail an id-kp-cmcRA certificate from a CA the policy does not list: 403 with the reason, counted', async () => {
    const answer = await post('/simpleenroll', 'rogue RA', '/CN=sensor-18');
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal('403 RA certificate not accepted: it was not issued by a downstream RA CA of the policy\n');
    // Refused before authentication: counted per address and code, not stored as a request (issue #10).
    expect(await latestRefusal(ra)).to.deep.include({ code: 'EST_CLIENT_CERT_REJECTED', status: 403 });
  });

  it('fail a certificate of the RA CA without id-kp-cmcRA is no RA: the passcode is still asked for, renewal refused', async () => {
    expect((await post('/simpleenroll', 'not an RA', '/CN=sensor-19')).status).to.equal(401);
    const renewal = await post('/simplereenroll', 'not an RA', '/CN=sensor-19');
    expect(renewal.status).to.equal(403);
    expect(renewal.body).to.equal("403 TLS client certificate not accepted: certificate was not issued by this profile's CA\n");
  });

  it('fail a policy that lists no downstream RA CA treats the RA certificate as any other client certificate', async () => {
    expect((await post('/plain/simpleenroll', 'line-3 RA', '/CN=sensor-20')).status).to.equal(401);
  });
});
