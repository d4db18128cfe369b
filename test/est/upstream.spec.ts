import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { makeRaIdentity, startUpstream, type RaIdentity, type Upstream } from '../helpers/upstream.js';
import { editConfig, editProfile } from '../helpers/config.js';
import { opensslCsr } from '../helpers/csr.js';
import { certsFromP7, curl, strongswanPki, x509Field } from '../helpers/clients.js';
import { mustRun } from '../helpers/run.js';
import { createPasscode } from '../helpers/passcodes.js';
import { eventually } from '../helpers/wait.js';
import { latestRequest } from '../helpers/admin-cli.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];
const LABEL = 'devicetrustmanager/IOT_1/device-group/line-1';
const UPSTREAM_PASSCODE_ENV = 'EST_RA_TEST_UPSTREAM_PASSCODE';

describe('est-ra as an RA: forwarding to a real upstream EST server with its RA certificate', function () {
  this.timeout(60_000);
  let dir: string;
  let identity: RaIdentity;
  let upstream: Upstream;
  let ra: TestEstRa;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-upstream-'));
    identity = await makeRaIdentity(dir);
    upstream = await startUpstream({ dir: join(dir, 'upstream'), clientCaFile: identity.caFile, passcode: 'upstream-secret', label: LABEL });
    process.env[UPSTREAM_PASSCODE_ENV] = 'upstream-secret';
    ra = await startEstRa({
      editConfig: (yaml) =>
        editProfile(
          editConfig(yaml, (config) => (config.ops = { listen: { host: '127.0.0.1', port: 0 } })),
          'demo',
          (profile) => {
            profile.upstream = 'est';
            profile.est = {
              url: upstream.baseUrl,
              ra_certificate: identity.certFile,
              ra_key: identity.keyFile,
              trust_anchors: [upstream.rootCaFile],
              username: 'est-ra',
              passcode: { env: UPSTREAM_PASSCODE_ENV },
              timeout_ms: 2000,
            };
          },
        ),
    });
  });
  after(async () => {
    await ra.close();
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const upstreamVerify = (cert: string): Promise<string> =>
    mustRun('openssl', ['verify', '-CAfile', upstream.rootCaFile, '-untrusted', upstream.issuingCaFile, cert]);
  const enroll = async (name: string, csrFile: string): Promise<Awaited<ReturnType<typeof curl>>> =>
    curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${csrFile}`]);

  it("ok cacerts are the upstream's, fetched over the RA link", async () => {
    const answer = await curl(ra, '/cacerts', []);
    expect(answer.status).to.equal(200);
    const pem = await certsFromP7(ra.dir, answer.body, 'up-cacerts');
    expect(await mustRun('openssl', ['crl2pkcs7', '-nocrl', '-certfile', pem])).to.be.a('string');
    expect(await upstreamVerify(upstream.issuingCaFile)).to.contain(': OK');
  });

  it('ok simpleenroll is forwarded with the RA certificate and keep-alive, and the certificate verifies against the upstream CA', async () => {
    const before = await upstream.stats();
    for (const name of ['fw-1', 'fw-2', 'fw-3']) {
      const device = await opensslCsr(ra.dir, name, { subject: `/CN=${name}/O=Line 1` });
      const answer = await enroll(name, device.csrPemFile);
      expect(answer.status, answer.body).to.equal(200);
      const cert = await certsFromP7(ra.dir, answer.body, `${name}-cert`);
      expect(await upstreamVerify(cert)).to.contain(': OK');
      expect(await x509Field(cert, '-subject')).to.equal(`subject=O=Line 1,CN=${name}`);
    }
    const after = await upstream.stats();
    expect(after.lastClientSubject).to.equal('CN=est-ra RA');
    expect(after.issued - before.issued).to.equal(3);
    expect(after.tlsHandshakes - before.tlsHandshakes, 'one TLS connection, reused').to.be.at.most(1);
  });

  it('#9 - fail a CSR asking for what the profile would not issue is refused before forwarding: names, CA:TRUE, other EKUs', async () => {
    const cases: [string, { subject?: string; addext?: string[] }, string][] = [
      ['up-bank', { subject: '/CN=www.bank.example' }, "403 subject.common_name www.bank.example does not match the profile's patterns"],
      [
        'up-ca',
        { addext: ['basicConstraints=critical,CA:TRUE'] },
        '403 the CSR asks for basicConstraints cA TRUE; the profile issues end-entity certificates only\n',
      ],
      ['up-eku', { addext: ['extendedKeyUsage=serverAuth'] }, '403 the CSR asks for extended key usage 1.3.6.1.5.5.7.3.1, which the profile does not issue\n'],
      ['up-ku', { addext: ['keyUsage=keyCertSign'] }, '403 the CSR asks for keyCertSign or cRLSign key usage\n'],
      ['up-ext', { addext: ['nsComment=hello'] }, '403 the CSR asks for extension 2.16.840.1.113730.1.13, which the profile does not issue\n'],
    ];
    const before = (await upstream.stats()).requests.simpleenroll;
    for (const [name, options, reason] of cases) {
      const device = await opensslCsr(ra.dir, name, options);
      const answer = await enroll(name, device.csrPemFile);
      expect(answer.status, name).to.equal(403);
      expect(answer.body, name).to.contain(reason);
    }
    expect((await upstream.stats()).requests.simpleenroll, 'nothing reached the upstream').to.equal(before);
    const allowed = await opensslCsr(ra.dir, 'up-allowed', {
      addext: ['extendedKeyUsage=clientAuth', 'keyUsage=digitalSignature', 'basicConstraints=CA:FALSE'],
    });
    expect((await enroll('up-allowed', allowed.csrPemFile)).status).to.equal(200);
  });

  it('#9 - ok a passcode use is given back when the upstream refuses the request', async () => {
    const passcode = await createPasscode(ra, '--max-uses', '1');
    const withPasscode = (csrFile: string) => curl(ra, '/simpleenroll', ['--user', `:${passcode}`, ...PKCS10, '--data-binary', `@${csrFile}`]);
    await upstream.setMode('garbage');
    try {
      expect((await withPasscode((await opensslCsr(ra.dir, 'refund-1')).csrPemFile)).status).to.equal(502);
    } finally {
      await upstream.setMode('normal');
    }
    const second = await withPasscode((await opensslCsr(ra.dir, 'refund-2')).csrPemFile);
    expect(second.status, 'the one use is still there').to.equal(200);
    expect((await withPasscode((await opensslCsr(ra.dir, 'refund-3')).csrPemFile)).status, 'and now spent').to.equal(401);
  });

  it('#10 - ok a one-use passcode while the upstream is down: 202, the same CSR again 202 (no second use), then the certificate', async () => {
    const passcode = await createPasscode(ra, '--max-uses', '1');
    const device = await opensslCsr(ra.dir, 'once-down');
    const send = () => curl(ra, '/simpleenroll', ['--user', `:${passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    await upstream.setMode('error500');
    try {
      expect((await send()).status).to.equal(202);
      expect((await send()).status, 'a retry takes no use').to.equal(202);
    } finally {
      await upstream.setMode('normal');
    }
    const issued = await eventually(async () => {
      const answer = await send();
      return answer.status === 200 ? answer : undefined;
    }, 30_000);
    expect(await upstreamVerify(await certsFromP7(ra.dir, issued.body, 'once-down'))).to.contain(': OK');
  });

  it('ok simplereenroll with a certificate the upstream issued keeps its identity', async () => {
    const device = await opensslCsr(ra.dir, 'fw-renew', { subject: '/CN=fw-renew' });
    const first = await certsFromP7(ra.dir, (await enroll('fw-renew', device.csrPemFile)).body, 'fw-renew-cert');
    // RFC 7030 §4.2.2: the renewal CSR carries the certificate's subject; est-ra forwards it unchanged.
    const next = await opensslCsr(ra.dir, 'fw-renew-2', { subject: '/CN=fw-renew' });
    const answer = await curl(ra, '/simplereenroll', ['--cert', first, '--key', device.keyFile, ...PKCS10, '--data-binary', `@${next.csrPemFile}`]);
    expect(answer.status, answer.body).to.equal(200);
    const renewed = await certsFromP7(ra.dir, answer.body, 'fw-renewed');
    expect(await upstreamVerify(renewed)).to.contain(': OK');
    expect(await x509Field(renewed, '-subject')).to.equal('subject=CN=fw-renew');
  });

  it('#9 - fail simplereenroll whose CSR asks for another identity: 403 before anything reaches the upstream', async () => {
    const device = await opensslCsr(ra.dir, 'fw-swap', { subject: '/CN=fw-swap' });
    const first = await certsFromP7(ra.dir, (await enroll('fw-swap', device.csrPemFile)).body, 'fw-swap-cert');
    const next = await opensslCsr(ra.dir, 'fw-swap-2', { subject: '/CN=somebody-else' });
    const renewalsBefore = (await upstream.stats()).requests.simplereenroll;
    const answer = await curl(ra, '/simplereenroll', ['--cert', first, '--key', device.keyFile, ...PKCS10, '--data-binary', `@${next.csrPemFile}`]);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal("403 a renewal keeps the certificate's identity (RFC 7030 §4.2.2): it has CN=fw-swap; the CSR asks for CN=somebody-else\n");
    expect((await upstream.stats()).requests.simplereenroll).to.equal(renewalsBefore);
  });

  for (const [mode, status, text] of [
    ['unauthorized', 502, "502 the upstream CA rejected est-ra's own credentials (401)\n"],
    ['forbidden', 502, "502 the upstream CA rejected est-ra's own credentials (403)\n"],
    ['garbage', 502, '502 upstream answer rejected: not a certs-only PKCS#7 of DER certificates: content runs past its container\n'],
    ['wrong-key', 502, "502 upstream answer rejected: the certificate is not for the CSR's key\n"],
    ['other-ca', 502, "502 upstream answer rejected: the certificate is not acceptable: certificate was not issued by this profile's CA\n"],
  ] as const) {
    it(`fail upstream answers ${mode}: the device gets ${status} with the reason, recorded as refused`, async () => {
      await upstream.setMode(mode);
      try {
        const device = await opensslCsr(ra.dir, `fw-${mode}`);
        const answer = await enroll(`fw-${mode}`, device.csrPemFile);
        expect(answer.status).to.equal(status);
        expect(answer.body).to.equal(text);
        expect(await latestRequest(ra)).to.include({ outcome: 'refused', status });
      } finally {
        await upstream.setMode('normal');
      }
    });
  }

  it('ok upstream 401 is logged as an error for the admin and counted in /metrics', async () => {
    expect(ra.logs.some((line) => line.includes('"level":"error"') && line.includes("upstream rejected est-ra's credentials"))).to.equal(true);
    const metrics = await (await fetch(`${ra.server.opsUrl!}/metrics`)).text();
    expect(metrics).to.contain('est_ra_upstream_failures_total{profile="demo",kind="auth"} 2');
    expect(metrics).to.contain('est_ra_upstream_failures_total{profile="demo",kind="invalid"} 4');
    expect(metrics).to.match(/est_ra_requests_total\{profile="demo",operation="simpleenroll",status="502",outcome="failed"\} \d+/);
    // The RA certificate est-ra presents to the upstream: days left, for an alert long before it expires.
    expect(metrics).to.match(/est_ra_certificate_days_left\{kind="ra",profile="demo",subject="CN=est-ra RA"\} \d+/);
    expect(metrics).to.match(/est_ra_upstream_reachable\{profile="demo"\} [01]\n/);
  });

  it('ok a CSR with a challengePassword through an RA certificate with id-kp-cmcRA: libest mode issues it; a 401 to it is about credentials', async () => {
    const config = join(ra.dir, 'cmcra-pop.cnf');
    writeFileSync(
      config,
      '[req]\ndistinguished_name = dn\nattributes = attrs\nprompt = no\n[dn]\nCN = fw-cmcra\n[attrs]\nchallengePassword = AAAAAAAAAAAAAAAA\n',
    );
    const p256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    const csrs = ['fw-cmcra', 'fw-cmcra-2'].map((name) => join(ra.dir, `${name}.csr`));
    for (const csr of csrs) await mustRun('openssl', ['req', '-new', ...p256, '-keyout', `${csr}.key`, '-config', config, '-out', csr]);
    try {
      // libest skips its tls-unique check for an RA (RFC 7030 §3.7), so the device's challengePassword does not matter.
      await upstream.setMode('libest');
      expect((await enroll('fw-cmcra', csrs[0]!)).status).to.equal(200);
      await upstream.setMode('unauthorized');
      const refused = await enroll('fw-cmcra-2', csrs[1]!);
      expect(refused.body).to.equal("502 the upstream CA rejected est-ra's own credentials (401)\n");
    } finally {
      await upstream.setMode('normal');
    }
  });

  it("ok upstream 202: the device gets 202 + Retry-After, est-ra polls, the device's retry gets the certificate", async () => {
    await upstream.setMode('pending');
    try {
      const device = await opensslCsr(ra.dir, 'fw-pending');
      const first = await enroll('fw-pending', device.csrPemFile);
      expect(first.status).to.equal(202);
      expect(first.headers).to.match(/\r\nRetry-After: \d+\r\n/);
      await upstream.approve();
      const issued = await eventually(async () => ((await latestRequest(ra))?.outcome === 'issued' ? true : undefined));
      expect(issued).to.equal(true);
      const retry = await enroll('fw-pending', device.csrPemFile);
      expect(retry.status, retry.body).to.equal(200);
      expect(await upstreamVerify(await certsFromP7(ra.dir, retry.body, 'fw-pending-cert'))).to.contain(': OK');
    } finally {
      await upstream.setMode('normal');
    }
  });

  it('ok strongSwan pki --est follows 202 with --interval until the certificate is issued', async () => {
    await upstream.setMode('pending');
    try {
      const device = await opensslCsr(ra.dir, 'fw-ss');
      const approveSoon = new Promise((resolve) => setTimeout(resolve, 1500)).then(() => upstream.approve());
      const result = await strongswanPki(ra, [
        '--est',
        '--in',
        device.csrDerFile,
        '--userpass',
        `device:${ra.passcode}`,
        '--interval',
        '1',
        '--maxpolltime',
        '30',
        '--outform',
        'pem',
      ]);
      await approveSoon;
      expect(result.code, result.stderr).to.equal(0);
      const cert = join(ra.dir, 'fw-ss.crt');
      writeFileSync(cert, result.stdout);
      expect(await upstreamVerify(cert)).to.contain(': OK');
    } finally {
      await upstream.setMode('normal');
    }
  });

  it('ok upstream stopped with requests in flight: all queued (202), all issued once it is back', async () => {
    await upstream.stop();
    const devices = await Promise.all([1, 2, 3, 4, 5].map((i) => opensslCsr(ra.dir, `fw-down-${i}`)));
    for (const device of devices) {
      const answer = await enroll('down', device.csrPemFile);
      expect(answer.status, answer.body).to.equal(202);
      expect(answer.headers).to.match(/\r\nRetry-After: \d+\r\n/);
    }
    expect((await curl(ra, '/cacerts', [])).status, 'cached /cacerts while the upstream is down').to.equal(200);
    expect(await (await fetch(`${ra.server.opsUrl!}/metrics`)).text()).to.contain('est_ra_requests_waiting{state="queued"} 5');
    await upstream.restart();
    const before = await upstream.stats();
    for (const device of devices) {
      const answer = await eventually(async () => {
        const retry = await enroll('down', device.csrPemFile);
        return retry.status === 200 ? retry : undefined;
      }, 30_000);
      expect(await upstreamVerify(await certsFromP7(ra.dir, answer.body, 'fw-down-cert'))).to.contain(': OK');
    }
    const after = await upstream.stats();
    expect(after.issued - before.issued, 'each request issued exactly once').to.equal(5);
  });

  it('ok a hanging upstream times out into the queue, and the request is issued when it answers again', async () => {
    await upstream.setMode('hang');
    const device = await opensslCsr(ra.dir, 'fw-hang');
    const first = await enroll('fw-hang', device.csrPemFile);
    expect(first.status).to.equal(202);
    await upstream.setMode('normal');
    const answer = await eventually(async () => {
      const retry = await enroll('fw-hang', device.csrPemFile);
      return retry.status === 200 ? retry : undefined;
    }, 30_000);
    expect(await upstreamVerify(await certsFromP7(ra.dir, answer.body, 'fw-hang-cert'))).to.contain(': OK');
    // The timed-out attempt may have been issued upstream (EST has no idempotency): recorded, and logged by id with the serial.
    const request = await latestRequest(ra);
    expect(request).to.include({ outcome: 'issued', possibly_issued_twice_upstream: true });
    const warned = ra.logs
      .filter((line) => line.includes('the upstream may hold a second certificate'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(warned).to.deep.include({ ...warned[0], id: request!.id, serial: request!.serial });
  });

  it('ok an upstream that refuses connections: queued, and not marked as possibly issued twice', async () => {
    await upstream.stop();
    try {
      const device = await opensslCsr(ra.dir, 'fw-refused');
      expect((await enroll('fw-refused', device.csrPemFile)).status).to.equal(202);
      expect(await latestRequest(ra)).to.include({ outcome: 'queued', possibly_issued_twice_upstream: false });
    } finally {
      await upstream.restart();
    }
  });
});
