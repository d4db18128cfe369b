import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { opensslCsr } from '../helpers/csr.js';
import { mustRun, run } from '../helpers/run.js';

/**
 * strongSwan's `pki --estca` / `pki --est`: an EST client that shares no code
 * with est-ra or with curl. pki appends /.well-known/est/<op> to --url, so it
 * reaches the default profile on the bare path.
 */
describe('strongSwan pki as an independent EST client', () => {
  let ra: TestEstRa;
  before(async () => {
    ra = await startEstRa();
  });
  after(async () => ra.close());

  const pki = (args: string[]): Promise<string> => mustRun('pki', [...args, '--url', `${ra.url}/`, '--cacert', ra.rootCaFile]);

  it('ok pki --estca fetches and trusts the issuing CA', async () => {
    const caOut = join(ra.dir, 'ss-ca.pem');
    await pki(['--estca', '--caout', caOut, '--outform', 'pem', '--force']);
    const written = readFileSync(join(ra.dir, 'ss-ca-1.pem'), 'utf8');
    expect(written).to.equal(readFileSync(ra.issuingCaFile, 'utf8').trim() + '\n');
  });

  it('ok pki --est enrolls with a passcode, and the certificate verifies with openssl', async () => {
    const device = await opensslCsr(ra.dir, 'ss-device', { subject: '/CN=ss-device/O=Line 1' });
    const cert = join(ra.dir, 'ss-device.crt');
    writeFileSync(cert, await pki(['--est', '--in', device.csrDerFile, '--userpass', `device:${ra.passcode}`, '--outform', 'pem']));
    expect(await mustRun('openssl', ['verify', '-CAfile', ra.rootCaFile, '-untrusted', ra.issuingCaFile, cert])).to.contain(': OK');
    expect(await mustRun('openssl', ['x509', '-in', cert, '-noout', '-subject', '-nameopt', 'RFC2253'])).to.equal('subject=O=Line 1,CN=ss-device\n');
  });

  it('ok pki --est --cert --key re-enrolls with the old certificate as TLS client certificate', async () => {
    const device = await opensslCsr(ra.dir, 'ss-renew', { subject: '/CN=ss-renew' });
    const firstPem = await pki(['--est', '--in', device.csrDerFile, '--userpass', `device:${ra.passcode}`, '--outform', 'pem']);
    const first = join(ra.dir, 'ss-renew.crt');
    writeFileSync(first, firstPem);
    const next = await opensslCsr(ra.dir, 'ss-renew-2', { subject: '/CN=ss-renew' });
    const renewedPem = await pki(['--est', '--in', next.csrDerFile, '--cert', first, '--key', device.keyFile, '--outform', 'pem']);
    const renewed = join(ra.dir, 'ss-renewed.crt');
    writeFileSync(renewed, renewedPem);
    expect(await mustRun('openssl', ['verify', '-CAfile', ra.rootCaFile, '-untrusted', ra.issuingCaFile, renewed])).to.contain(': OK');
    const serial = async (f: string): Promise<string> => mustRun('openssl', ['x509', '-in', f, '-noout', '-serial']);
    expect(await serial(renewed)).not.to.equal(await serial(first));
    const operations = ra.logs.map((l) => JSON.parse(l) as { operation?: string; status?: number }).filter((l) => l.operation === 'simplereenroll');
    expect(operations.at(-1)?.status).to.equal(200);
  });

  it('fail pki --est with a wrong passcode: refused, nothing issued', async () => {
    const device = await opensslCsr(ra.dir, 'ss-wrong');
    const result = await run('pki', [
      '--est',
      '--in',
      device.csrDerFile,
      '--userpass',
      'device:wrong',
      '--url',
      `${ra.url}/`,
      '--cacert',
      ra.rootCaFile,
      '--outform',
      'pem',
    ]);
    expect(result.code).not.to.equal(0);
    expect(result.stdout).not.to.contain('BEGIN CERTIFICATE');
    expect(result.stderr).to.contain('401');
  });
});
