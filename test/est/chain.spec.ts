import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { makeRaIdentity } from '../helpers/upstream.js';
import { editConfig, editProfile } from '../helpers/config.js';
import { opensslCsr } from '../helpers/csr.js';
import { certsFromP7, curl, x509Field } from '../helpers/clients.js';
import { mustRun } from '../helpers/run.js';
import { latestRequest } from '../helpers/admin-cli.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/** A line RA in front of a plant-level est-ra on its local CA: est-ra is itself an RFC 7030 upstream. */
describe('est-ra chained to a second est-ra on local-ca', function () {
  this.timeout(60_000);
  let dir: string;
  let upstream: TestEstRa;
  let ra: TestEstRa;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-chain-'));
    const identity = await makeRaIdentity(dir);
    // The plant-level est-ra trusts the line RA's CA: its id-kp-cmcRA certificate enrolls and renews for devices.
    upstream = await startEstRa({
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          (config.authentication_policies as Record<string, Record<string, unknown>>).demo = { downstream_ra_cas: [identity.caFile] };
        }),
    });
    ra = await startEstRa({
      editConfig: (yaml) =>
        editProfile(yaml, 'demo', (profile) => {
          profile.upstream = 'est';
          profile.csrattrs_source = 'merged';
          profile.est_cacerts_include_full_tls_chain = true;
          profile.est = {
            url: `${upstream.url}/.well-known/est/devicetrustmanager/IOT_demo/device-group/line-1`,
            ra_certificate: identity.certFile,
            ra_key: identity.keyFile,
            trust_anchors: [upstream.rootCaFile],
            reenroll_operation: 'simplereenroll',
          };
        }),
    });
  });
  after(async () => {
    await ra.close();
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const verifyAtUpstream = (cert: string): Promise<string> =>
    mustRun('openssl', ['verify', '-CAfile', upstream.rootCaFile, '-untrusted', upstream.issuingCaFile, cert]);

  it("ok cacerts at the RA are the upstream est-ra's, then the CA of the RA's own TLS chain", async () => {
    const ours = readFileSync(await certsFromP7(ra.dir, (await curl(ra, '/cacerts', [])).body, 'chain-cacerts'), 'utf8');
    const pems = ours.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
    const pem = (file: string): string => readFileSync(file, 'utf8').trim();
    expect(pems).to.deep.equal([pem(upstream.issuingCaFile), pem(upstream.rootCaFile), pem(ra.issuingCaFile)]);
  });

  it("ok a device enrolls at the RA and holds a certificate of the upstream est-ra's CA; both record it", async () => {
    const device = await opensslCsr(ra.dir, 'chain-device', { subject: '/CN=chain-device' });
    const answer = await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    expect(answer.status, answer.body).to.equal(200);
    const cert = await certsFromP7(ra.dir, answer.body, 'chain-device-cert');
    expect(await verifyAtUpstream(cert)).to.contain(': OK');
    const [atRa, atUpstream] = await Promise.all([latestRequest(ra), latestRequest(upstream)]);
    expect(atRa?.serial).to.equal(atUpstream?.serial);
    expect(atUpstream?.peer_address).to.equal('127.0.0.1');
    expect(atRa?.principal).to.include({ kind: 'passcode' });
    expect(atUpstream?.principal).to.include({ kind: 'ra', subject: 'CN=est-ra RA', device: 'CN=chain-device' });
  });

  it('ok renewal through the chain keeps the identity', async () => {
    const device = await opensslCsr(ra.dir, 'chain-renew', { subject: '/CN=chain-renew' });
    const first = await certsFromP7(
      ra.dir,
      (await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`])).body,
      'chain-renew-cert',
    );
    const next = await opensslCsr(ra.dir, 'chain-renew-2', { subject: '/CN=chain-renew' });
    const answer = await curl(ra, '/simplereenroll', ['--cert', first, '--key', device.keyFile, ...PKCS10, '--data-binary', `@${next.csrPemFile}`]);
    expect(answer.status, answer.body).to.equal(200);
    const renewed = await certsFromP7(ra.dir, answer.body, 'chain-renewed');
    expect(await verifyAtUpstream(renewed)).to.contain(': OK');
    expect(await x509Field(renewed, '-subject')).to.equal('subject=CN=chain-renew');
    expect(await latestRequest(upstream)).to.deep.include({ operation: 'simplereenroll', outcome: 'issued' });
  });

  it("ok csrattrs merged: the profile's and the upstream's, each once", async () => {
    const answer = await curl(ra, '/csrattrs', []);
    expect(answer.status).to.equal(200);
    // Both est-ras derive theirs from the same sample profile: merged, each attribute once, it is one copy.
    expect(Buffer.from(answer.body, 'base64').toString('hex')).to.equal(
      '3081ab301106092a864886f70d010101310402020800301106092a864886f70d010101310402020c00301106092a864886f70d010101310402021000' +
        '301506072a8648ce3d0201310a06082a8648ce3d030107301206072a8648ce3d0201310706052b81040022301206072a8648ce3d0201310706052b81' +
        '04002306032b6570060355040306092a864886f70d01010b06082a8648ce3d04030206082a8648ce3d04030306082a8648ce3d040304',
    );
  });

  it('ok strongSwan pki --est through the chain', async () => {
    const device = await opensslCsr(ra.dir, 'chain-ss');
    const pem = await mustRun('pki', [
      '--est',
      '--url',
      `${ra.url}/`,
      '--cacert',
      ra.rootCaFile,
      '--in',
      device.csrDerFile,
      '--userpass',
      `line:${ra.passcode}`,
      '--outform',
      'pem',
    ]);
    const cert = join(ra.dir, 'chain-ss.crt');
    writeFileSync(cert, pem);
    expect(await verifyAtUpstream(cert)).to.contain(': OK');
  });
});
