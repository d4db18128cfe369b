import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { makeRaIdentity, startUpstream, type RaIdentity, type Upstream } from '../helpers/upstream.js';
import { editProfile } from '../helpers/config.js';
import { opensslCsr, type KeyAndCsr } from '../helpers/csr.js';
import { certsFromP7, curl } from '../helpers/clients.js';
import { mustRun, run } from '../helpers/run.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];
const LABEL = 'devicetrustmanager/IOT_1/device-group/line-1';
/** The profile's own CsrAttrs, derived from its rules, as test/est/errors.spec.ts shows it. */
const OWN_CSRATTRS =
  '3081ab301106092a864886f70d010101310402020800301106092a864886f70d010101310402020c00301106092a864886f70d010101310402021000' +
  '301506072a8648ce3d0201310a06082a8648ce3d030107301206072a8648ce3d0201310706052b81040022301206072a8648ce3d0201310706052b81' +
  '04002306032b6570060355040306092a864886f70d01010b06082a8648ce3d04030206082a8648ce3d04030306082a8648ce3d040304';

/**
 * Issue #9 §5, est-ra → upstream: the test upstream in mode libest behaves as
 * cisco/libest's estserver does (OpenSSL's base64 BIO on CSRs, a NUL after
 * /csrattrs, the tls-unique PoP check). est-ra's RA certificate here has
 * clientAuth only, no id-kp-cmcRA, as many RA certificates are issued.
 */
describe('est-ra → an upstream that behaves like libest (RA certificate without id-kp-cmcRA)', function () {
  this.timeout(90_000);
  let dir: string;
  let identity: RaIdentity;
  let upstream: Upstream;
  let ra: TestEstRa;
  let rsa: KeyAndCsr;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-libest-'));
    identity = await makeRaIdentity(dir, { cmcRa: false });
    upstream = await startUpstream({ dir: join(dir, 'upstream'), clientCaFile: identity.caFile, label: LABEL, mode: 'libest' });
    ra = await startEstRa({
      editConfig: (yaml) =>
        editProfile(yaml, 'demo', (profile) => {
          profile.upstream = 'est';
          profile.est = {
            url: upstream.baseUrl,
            ra_certificate: identity.certFile,
            ra_key: identity.keyFile,
            trust_anchors: [upstream.rootCaFile],
            timeout_ms: 5000,
          };
          profile.csrattrs_source = 'merged';
        }),
    });
    rsa = await opensslCsr(ra.dir, 'up-rsa4096', { subject: '/CN=up-rsa4096', keyArgs: ['-newkey', 'rsa:4096'] });
  });
  after(async () => {
    await ra.close();
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const upstreamVerify = (cert: string): Promise<string> =>
    mustRun('openssl', ['verify', '-CAfile', upstream.rootCaFile, '-untrusted', upstream.issuingCaFile, cert]);
  /** Posts a body straight to the upstream with est-ra's RA identity, as curl would. */
  const postToUpstream = async (body: string): Promise<{ status: string; text: string }> => {
    const file = join(dir, `direct-${process.hrtime.bigint()}.b64`);
    writeFileSync(file, body);
    const result = await run('curl', [
      '-sS',
      '--cacert',
      upstream.rootCaFile,
      '--cert',
      identity.certFile,
      '--key',
      identity.keyFile,
      ...PKCS10,
      '--data-binary',
      `@${file}`,
      '-w',
      '\n%{http_code}',
      `${upstream.baseUrl}/simpleenroll`,
    ]);
    const cut = result.stdout.lastIndexOf('\n');
    return { status: result.stdout.slice(cut + 1), text: result.stdout.slice(0, cut) };
  };

  it('ok the libest mode refuses a one-line CSR of >= 1024 base64 characters with 400 and issues it wrapped (what libest does)', async () => {
    const oneLine = rsa.csrDer.toString('base64');
    expect(oneLine.length).to.be.at.least(1024);
    expect(await postToUpstream(`${oneLine}\r\n`)).to.deep.equal({ status: '400', text: 'Invalid or corrupted pkcs10 request\n' });
    expect((await postToUpstream(`${oneLine.replace(/.{64}/g, '$&\n')}\n`)).status).to.equal('200');
  });

  it('ok est-ra forwards an RSA-4096 CSR in 64-column lines: issued', async () => {
    const answer = await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${rsa.csrPemFile}`]);
    expect(answer.status, answer.body).to.equal(200);
    const cert = await certsFromP7(ra.dir, answer.body, 'up-rsa4096-cert');
    expect(await upstreamVerify(cert)).to.contain(': OK');
  });

  it('ok est-ra forwards a P-256 CSR with 40 SANs (over 1024 base64 characters): issued with all 40', async () => {
    const sans = Array.from({ length: 40 }, (_, i) => `DNS:sensor-${i}.line-1.local`).join(',');
    const device = await opensslCsr(ra.dir, 'up-40-sans', { subject: '/CN=up-40-sans', addext: [`subjectAltName=${sans}`] });
    expect(device.csrDer.toString('base64').length).to.be.at.least(1024);
    const answer = await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    expect(answer.status, answer.body).to.equal(200);
    const cert = await certsFromP7(ra.dir, answer.body, 'up-40-sans-cert');
    expect(await upstreamVerify(cert)).to.contain(': OK');
    const text = await mustRun('openssl', ['x509', '-in', cert, '-noout', '-ext', 'subjectAltName']);
    expect(text.match(/DNS:/g)).to.have.length(40);
  });

  it("ok /csrattrs: the upstream's answer ends with a NUL byte; est-ra reads it and merges it with the profile's", async () => {
    const answer = await curl(ra, '/csrattrs', []);
    expect(answer.status, answer.body).to.equal(200);
    const der = Buffer.from(answer.body, 'base64').toString('hex');
    expect(der).to.contain('06092a864886f70d010907', "the upstream's challengePassword");
    expect(der).to.contain('06082a8648ce3d030107', "the profile's P-256");
  });

  it("ok upstream /csrattrs failing: devices get the profile's own attributes and the log says why", async () => {
    await upstream.setMode('csrattrs-down');
    try {
      const answer = await curl(ra, '/csrattrs', []);
      expect(answer.status, answer.body).to.equal(200);
      expect(Buffer.from(answer.body, 'base64').toString('hex')).to.equal(OWN_CSRATTRS);
      const warning = ra.logs.find((line) => line.includes("upstream /csrattrs failed; answering the profile's own attributes"));
      expect(warning).to.be.a('string').and.to.contain('"profile":"demo"').and.to.contain('500');
    } finally {
      await upstream.setMode('libest');
    }
  });

  it('fail a CSR with a challengePassword: libest checks it as tls-unique and answers 401; est-ra names that, not its credentials', async () => {
    const config = join(ra.dir, 'pop.cnf');
    writeFileSync(
      config,
      '[req]\ndistinguished_name = dn\nattributes = attrs\nprompt = no\n[dn]\nCN = up-pop\n[attrs]\nchallengePassword = AAAAAAAAAAAAAAAA\n',
    );
    const csr = join(ra.dir, 'up-pop.csr');
    await mustRun('openssl', [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(ra.dir, 'up-pop.key'),
      '-config',
      config,
      '-out',
      csr,
    ]);
    expect(readFileSync(csr, 'utf8')).to.contain('BEGIN CERTIFICATE REQUEST');
    const answer = await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${csr}`]);
    expect(answer.status).to.equal(502);
    expect(answer.body).to.equal(
      "502 the upstream CA refused the CSR's challengePassword as tls-unique proof-of-possession (401): est-ra's RA certificate has no id-kp-cmcRA (1.3.6.1.5.5.7.3.28)\n",
    );
    expect(ra.logs.some((line) => line.includes("upstream refused the CSR's tls-unique proof-of-possession"))).to.equal(true);
    expect(ra.logs.some((line) => line.includes("upstream rejected est-ra's credentials"))).to.equal(false);
  });
});
