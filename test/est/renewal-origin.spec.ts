import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig } from '../helpers/config.js';
import { opensslCsr, opensslIssue } from '../helpers/csr.js';
import { certsFromP7, curl, opensslVerify, strongswanPki } from '../helpers/clients.js';
import { mustRun } from '../helpers/run.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/**
 * Issue #9 §2: a renewal is judged by the profile that issued the
 * certificate. Two profiles share the local CA; one renews only in the last
 * 30 days. Renewing through the other must not get around that.
 */
describe('renewal bound to the profile that issued the certificate', function () {
  this.timeout(60_000);
  let ra: TestEstRa;

  before(async () => {
    ra = await startEstRa({
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          const profiles = config.profiles as Record<string, Record<string, unknown>>;
          profiles.window30 = { ...profiles.demo, default: false, labels: ['window30'], renewal_settings: { renew_valid_cert: 30 } };
        }),
    });
  });
  after(async () => ra.close());

  const enrollAt = async (label: string, name: string): Promise<{ certFile: string; keyFile: string }> => {
    const device = await opensslCsr(ra.dir, name);
    const answer = await curl(ra, `/${label}/simpleenroll`, ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    expect(answer.status, answer.body).to.equal(200);
    return { certFile: await certsFromP7(ra.dir, answer.body, `${name}-cert`), keyFile: device.keyFile };
  };
  const renewAt = async (label: string, cert: { certFile: string; keyFile: string }, name: string) => {
    const subject = (await mustRun('openssl', ['x509', '-in', cert.certFile, '-noout', '-subject', '-nameopt', 'RFC2253'])).trim().replace(/^subject=/, '/');
    const csr = await opensslCsr(ra.dir, `${name}-renew`, { subject });
    return curl(ra, `/${label}/simplereenroll`, ['--cert', cert.certFile, '--key', cert.keyFile, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`]);
  };

  it('#9 - fail a certificate refused renewal by its own profile cannot renew through another profile on the same CA', async () => {
    const cert = await enrollAt('window30', 'shopper');
    const own = await renewAt('window30', cert, 'shopper-own');
    expect(own.status).to.equal(403);
    expect(own.body).to.match(/^403 renewal opens 30 days before expiry: \d{4}-\d{2}-\d{2}\n$/);
    const elsewhere = await renewAt('demo', cert, 'shopper-demo');
    expect(elsewhere.status).to.equal(403);
    expect(elsewhere.body).to.equal("403 certificate was issued under profile 'window30'; renew it there (/.well-known/est/window30/simplereenroll)\n");
  });

  it('ok a certificate renews under the profile that issued it, and not under the other', async () => {
    const cert = await enrollAt('demo', 'homebody');
    const own = await renewAt('demo', cert, 'homebody-own');
    expect(own.status, own.body).to.equal(200);
    expect(await opensslVerify(ra, await certsFromP7(ra.dir, own.body, 'homebody-renewed'))).to.contain(': OK');
    const elsewhere = await renewAt('window30', cert, 'homebody-w30');
    expect(elsewhere.status).to.equal(403);
    expect(elsewhere.body).to.contain("issued under profile 'demo'");
  });

  it('fail a certificate of the same CA that est-ra never issued renews only where the policy lists the CA (renewal_cas)', async () => {
    const foreign = await opensslIssue(ra.dir, 'foreign', {
      caFile: ra.issuingCaFile,
      caKeyFile: join(ra.dir, 'pki', 'issuing-ca.key'),
      extensions: ['basicConstraints=CA:FALSE', 'extendedKeyUsage=clientAuth'],
    });
    const answer = await renewAt('demo', foreign, 'foreign');
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal("403 certificate was not issued by est-ra, and the authentication policy 'demo' lists none of its CAs in renewal_cas\n");
  });

  it('fail strongSwan pki --est --cert/--key renewing through the other profile gets no certificate', async () => {
    const cert = await enrollAt('window30', 'ss-shopper');
    const csr = await opensslCsr(ra.dir, 'ss-shopper-renew', { subject: '/CN=ss-shopper' });
    const result = await strongswanPki(ra, ['--est', '--in', csr.csrDerFile, '--cert', cert.certFile, '--key', cert.keyFile, '--outform', 'pem']);
    expect(result.code).not.to.equal(0);
    expect(result.stdout).not.to.contain('BEGIN CERTIFICATE');
    expect(result.stderr).to.contain('HTTP 403');
  });
});
