import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { expect } from 'chai';
import { opensslCsr, opensslSelfSigned, withBrokenSignature, type KeyAndCsr } from '../helpers/csr.js';
import { mustRun, run, sh, type RunResult } from '../helpers/run.js';
import { makeRaIdentity, startUpstream, type RaIdentity, type Upstream } from '../helpers/upstream.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

interface CurlAnswer {
  readonly status: number;
  readonly headers: string;
  readonly body: string;
  readonly result: RunResult;
}

describe('test upstream EST server (test/upstream/est-server.ts) driven by curl and openssl', () => {
  let tmp: string;
  let ra: RaIdentity;
  let up: Upstream;
  /** The RA's TLS identity, as an admin passes it to curl. */
  const asRa = (): string[] => ['--cert', ra.certFile, '--key', ra.keyFile];

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'est-upstream-spec-'));
    ra = await makeRaIdentity(tmp);
    up = await startUpstream({ dir: join(tmp, 'upstream'), clientCaFile: ra.caFile });
  });
  after(async () => {
    await up.close();
    rmSync(tmp, { recursive: true, force: true });
  });
  beforeEach(async () => up.setMode('normal'));

  /** curl trusting the upstream's root, reporting status, raw headers and body. */
  async function curl(upstream: Upstream, path: string, args: readonly string[]): Promise<CurlAnswer> {
    const headersFile = join(tmp, `headers-${process.hrtime.bigint()}.txt`);
    const result = await run('curl', [
      '-sS',
      '--cacert',
      upstream.rootCaFile,
      '-D',
      headersFile,
      '-o',
      '-',
      '-w',
      '\n%{http_code}',
      ...args,
      `${upstream.baseUrl}${path}`,
    ]);
    const cut = result.stdout.lastIndexOf('\n');
    let headers = '';
    try {
      headers = readFileSync(headersFile, 'utf8');
    } catch {
      // No headers: the connection failed, and the status (000) says so.
    }
    return { status: Number(result.stdout.slice(cut + 1)), headers, body: result.stdout.slice(0, cut), result };
  }

  /** `openssl base64 -d | openssl pkcs7 -inform DER -print_certs`, as an admin decodes an EST answer. */
  async function certsFromP7(base64Body: string, name: string): Promise<{ pem: string; result: RunResult }> {
    const p7 = join(tmp, `${name}.b64`);
    const pem = join(tmp, `${name}.pem`);
    writeFileSync(p7, base64Body);
    return { pem, result: await sh(`openssl base64 -d -in ${p7} | openssl pkcs7 -inform DER -print_certs -out ${pem}`, tmp) };
  }

  function verify(upstream: Upstream, certFile: string): Promise<RunResult> {
    return run('openssl', ['verify', '-CAfile', upstream.rootCaFile, '-untrusted', upstream.issuingCaFile, certFile]);
  }

  async function pubkey(kind: 'req' | 'x509', file: string): Promise<string> {
    return mustRun('openssl', [kind, '-in', file, '-noout', '-pubkey']);
  }

  /** POSTs the CSR PEM file as curl's --data-binary, expecting a 200 certs-only answer with one certificate. */
  async function enroll(name: string, device: KeyAndCsr, args: readonly string[] = [], upstream = up, path = '/simpleenroll'): Promise<string> {
    const answer = await curl(upstream, path, [...asRa(), ...PKCS10, '--data-binary', `@${device.csrPemFile}`, ...args]);
    expect(answer.status, answer.body + answer.result.stderr).to.equal(200);
    expect(answer.headers).to.match(/\r\nContent-Type: application\/pkcs7-mime; smime-type=certs-only\r\n/);
    expect(answer.headers).to.match(/\r\nContent-Length: \d+\r\n/);
    const { pem, result } = await certsFromP7(answer.body, name);
    expect(result.code, result.stderr).to.equal(0);
    expect(readFileSync(pem, 'utf8').match(/^subject=/gm)).to.have.length(1);
    return pem;
  }

  describe('EST operations', () => {
    it('ok start line: the helper knows the URL, the control plane and both CA files', () => {
      expect(up.url).to.match(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(up.baseUrl).to.equal(`${up.url}/.well-known/est`);
      expect(up.controlUrl).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(readFileSync(up.rootCaFile, 'utf8')).to.contain('BEGIN CERTIFICATE');
      expect(readFileSync(up.issuingCaFile, 'utf8')).to.contain('BEGIN CERTIFICATE');
    });

    it('ok cacerts: certs-only PKCS#7 with the issuing CA, then the root', async () => {
      const answer = await curl(up, '/cacerts', asRa());
      expect(answer.status).to.equal(200);
      expect(answer.headers).to.match(/\r\nContent-Type: application\/pkcs7-mime\r\n/);
      expect(answer.headers).to.match(/\r\nContent-Length: \d+\r\n/);
      const { pem, result } = await certsFromP7(answer.body, 'cacerts');
      expect(result.code, result.stderr).to.equal(0);
      const subjects = readFileSync(pem, 'utf8').match(/^subject=.*$/gm);
      expect(subjects).to.deep.equal(['subject=O = est-ra tests, CN = upstream issuing CA', 'subject=O = est-ra tests, CN = upstream root CA']);
    });

    it('ok simpleenroll, PEM body: the certificate chains to root + issuing and keeps the CSR key, subject and SANs', async () => {
      const device = await opensslCsr(tmp, 'dev-ec', { subject: '/CN=dev-ec/O=Plant 7', addext: ['subjectAltName=DNS:dev-ec.line1.local,IP:10.1.2.3'] });
      const cert = await enroll('dev-ec-cert', device);
      expect((await verify(up, cert)).stdout).to.contain(': OK');
      expect(await pubkey('x509', cert)).to.equal(await pubkey('req', device.csrPemFile));
      const text = await mustRun('openssl', ['x509', '-in', cert, '-noout', '-text']);
      expect(text).to.contain('Subject: CN = dev-ec, O = Plant 7');
      expect(text).to.contain('DNS:dev-ec.line1.local').and.to.contain('IP Address:10.1.2.3');
      expect(text).to.contain('TLS Web Client Authentication').and.to.contain('CA:FALSE');
    });

    it('ok simpleenroll: a CSR asking for CA:TRUE and serverAuth still gets CA:FALSE and clientAuth', async () => {
      const device = await opensslCsr(tmp, 'dev-greedy', { addext: ['basicConstraints=critical,CA:TRUE', 'extendedKeyUsage=serverAuth'] });
      const text = await mustRun('openssl', ['x509', '-in', await enroll('dev-greedy-cert', device), '-noout', '-text']);
      expect(text).to.contain('CA:FALSE').and.to.contain('TLS Web Client Authentication');
      expect(text).not.to.contain('CA:TRUE');
      expect(text).not.to.contain('TLS Web Server Authentication');
    });

    for (const [kind, keyArgs] of [
      ['rsa', ['-newkey', 'rsa:2048']],
      ['ed25519', ['-newkey', 'ed25519']],
    ] as const) {
      it(`ok simpleenroll, base64 body in 64-column lines: ${kind} CSR`, async () => {
        const device = await opensslCsr(tmp, `dev-${kind}`, { keyArgs: [...keyArgs] });
        const b64 = join(tmp, `dev-${kind}.b64`);
        await mustRun('openssl', ['base64', '-in', device.csrDerFile, '-out', b64]);
        const answer = await curl(up, '/simpleenroll', [...asRa(), ...PKCS10, '--data-binary', `@${b64}`]);
        expect(answer.status, answer.body).to.equal(200);
        const { pem } = await certsFromP7(answer.body, `dev-${kind}-cert`);
        expect((await verify(up, pem)).stdout).to.contain(': OK');
        expect(await pubkey('x509', pem)).to.equal(await pubkey('req', device.csrPemFile));
      });
    }

    it('ok simplereenroll: same answer shape as simpleenroll', async () => {
      const device = await opensslCsr(tmp, 'dev-renew');
      const cert = await enroll('dev-renew-cert', device, [], up, '/simplereenroll');
      expect((await verify(up, cert)).stdout).to.contain(': OK');
    });

    it('ok every enroll gets its own random serial', async () => {
      const device = await opensslCsr(tmp, 'dev-serial');
      const serials = await Promise.all(
        ['a', 'b'].map(async (n) => mustRun('openssl', ['x509', '-in', await enroll(`dev-serial-${n}`, device), '-noout', '-serial'])),
      );
      expect(serials[0]).to.match(/^serial=[0-9A-F]{32}\n$/);
      expect(serials[0]).not.to.equal(serials[1]);
    });

    it('ok csrattrs: 204', async () => {
      expect((await curl(up, '/csrattrs', asRa())).status).to.equal(204);
    });

    it('fail unknown operation 404, wrong method 405', async () => {
      expect((await curl(up, '/serverkeygen', asRa())).status).to.equal(404);
      const get = await curl(up, '/simpleenroll', asRa());
      expect(get.status).to.equal(405);
      expect(get.headers).to.match(/\r\nAllow: POST\r\n/);
    });

    it('fail bodies that are not a CSR, or a CSR whose signature does not verify: 400', async () => {
      const notBase64 = await curl(up, '/simpleenroll', [...asRa(), ...PKCS10, '--data-binary', 'hello, world!']);
      expect(notBase64.status).to.equal(400);
      const notCsr = await curl(up, '/simpleenroll', [...asRa(), ...PKCS10, '--data-binary', Buffer.from('not DER at all').toString('base64')]);
      expect(notCsr.status).to.equal(400);
      const device = await opensslCsr(tmp, 'dev-broken');
      const broken = join(tmp, 'dev-broken.b64');
      writeFileSync(broken, withBrokenSignature(device.csrDer).toString('base64'));
      const answer = await curl(up, '/simpleenroll', [...asRa(), ...PKCS10, '--data-binary', `@${broken}`]);
      expect(answer.status).to.equal(400);
      expect(answer.body).to.contain('signature');
    });

    it('ok no scratch files are left behind in the upstream directory', () => {
      expect(readdirSync(up.dir).filter((name) => name.startsWith('work-') || name.startsWith('pki-new-'))).to.deep.equal([]);
    });
  });

  describe('TLS client authentication', () => {
    it('fail a client without a certificate cannot get an answer', async () => {
      const start = await up.stats();
      const answer = await curl(up, '/cacerts', []);
      expect(answer.status).to.equal(0);
      expect(answer.result.code).not.to.equal(0);
      expect((await up.stats()).tlsClientErrors).to.equal(start.tlsClientErrors + 1);
    });

    it('fail a client certificate from another CA is refused', async () => {
      const { certFile: cert, keyFile: key } = await opensslSelfSigned(tmp, 'stranger', { subject: '/CN=est-ra RA' });
      const answer = await curl(up, '/cacerts', ['--cert', cert, '--key', key]);
      expect(answer.status).to.equal(0);
      expect(answer.result.code).not.to.equal(0);
    });

    it("ok the RA's PKCS#12 loads in Node's TLS and authenticates the RA", async () => {
      const pfx = readFileSync(ra.p12File);
      expect(() => createSecureContext({ pfx, passphrase: ra.p12Passphrase })).not.to.throw();
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(`${up.baseUrl}/cacerts`, { pfx, passphrase: ra.p12Passphrase, ca: readFileSync(up.rootCaFile), agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
      expect(status).to.equal(200);
      const stats = await up.stats();
      expect(stats.lastHadClientCert).to.equal(true);
      expect(stats.lastClientSubject).to.equal('CN=est-ra RA');
    });
  });

  describe('modes', () => {
    let device: KeyAndCsr;
    before(async () => {
      device = await opensslCsr(tmp, 'dev-modes', { subject: '/CN=dev-modes' });
    });
    const post = (extra: string[] = []): Promise<CurlAnswer> =>
      curl(up, '/simpleenroll', [...asRa(), ...PKCS10, '--data-binary', `@${device.csrPemFile}`, ...extra]);

    it('ok pending: 202 with Retry-After: 1 until approved, then the same request issues', async () => {
      await up.setMode('pending');
      for (let i = 0; i < 2; i++) {
        const answer = await post();
        expect(answer.status).to.equal(202);
        expect(answer.headers).to.match(/\r\nRetry-After: 1\r\n/);
      }
      await up.approve();
      const cert = await certsFromP7((await post()).body, 'dev-pending-cert');
      expect((await verify(up, cert.pem)).stdout).to.contain(': OK');
      expect((await post()).status, 'every later request issues').to.equal(200);
      await up.setMode('pending');
      expect((await post()).status, 'entering pending again forgets the approval').to.equal(202);
    });

    it('fail unauthorized: 401 with a Basic challenge', async () => {
      await up.setMode('unauthorized');
      const answer = await post();
      expect(answer.status).to.equal(401);
      expect(answer.headers).to.match(/\r\nWWW-Authenticate: Basic realm="upstream"\r\n/);
    });

    it('fail forbidden: 403', async () => {
      await up.setMode('forbidden');
      expect((await post()).status).to.equal(403);
    });

    it('fail error500: 500 with a text body; cacerts still answers', async () => {
      await up.setMode('error500');
      const answer = await post();
      expect(answer.status).to.equal(500);
      expect(answer.headers).to.match(/\r\nContent-Type: text\/plain/);
      expect(answer.body).to.contain('error');
      expect((await curl(up, '/cacerts', asRa())).status).to.equal(200);
    });

    it('fail garbage: 200 with base64 that openssl cannot read as PKCS#7', async () => {
      await up.setMode('garbage');
      const answer = await post();
      expect(answer.status).to.equal(200);
      expect(answer.headers).to.match(/\r\nContent-Type: application\/pkcs7-mime; smime-type=certs-only\r\n/);
      expect(answer.body.trim()).to.match(/^[A-Za-z0-9+/=\r\n]+$/);
      expect((await certsFromP7(answer.body, 'garbage')).result.code).not.to.equal(0);
    });

    it('fail wrong-key: a valid certificate from the issuing CA with the same subject but another key', async () => {
      await up.setMode('wrong-key');
      const answer = await post();
      expect(answer.status).to.equal(200);
      const { pem } = await certsFromP7(answer.body, 'wrong-key');
      expect((await verify(up, pem)).stdout).to.contain(': OK');
      expect(await mustRun('openssl', ['x509', '-in', pem, '-noout', '-subject'])).to.equal('subject=CN = dev-modes\n');
      expect(await pubkey('x509', pem)).not.to.equal(await pubkey('req', device.csrPemFile));
    });

    it('fail other-ca: the CSR key, but a chain that does not verify against the upstream root', async () => {
      await up.setMode('other-ca');
      const answer = await post();
      expect(answer.status).to.equal(200);
      const { pem } = await certsFromP7(answer.body, 'other-ca');
      expect(await pubkey('x509', pem)).to.equal(await pubkey('req', device.csrPemFile));
      const result = await verify(up, pem);
      expect(result.code).not.to.equal(0);
      expect(result.stdout + result.stderr).to.contain('unable to get local issuer certificate');
    });

    it('fail hang: curl --max-time 2 times out with no answer', async () => {
      await up.setMode('hang');
      const started = Date.now();
      const answer = await post(['--max-time', '2']);
      expect(answer.result.code, answer.result.stderr).to.equal(28);
      expect(answer.status).to.equal(0);
      expect(Date.now() - started).to.be.at.least(1900);
    });

    it('fail reset: the connection is closed without an answer; the upstream keeps serving', async () => {
      await up.setMode('reset');
      const answer = await post();
      expect(answer.status).to.equal(0);
      expect([52, 56], answer.result.stderr).to.include(answer.result.code);
      await up.setMode('normal');
      expect((await post()).status).to.equal(200);
    });

    it('fail an unknown mode is refused by the control plane', async () => {
      const response = await fetch(`${up.controlUrl}/control/mode`, { method: 'POST', body: 'sideways' });
      expect(response.status).to.equal(400);
      expect((await up.stats()).mode).to.equal('normal');
    });
  });

  describe('mode libest (what cisco/libest estserver does)', () => {
    it('ok /csrattrs: base64 CsrAttrs followed by a NUL byte that Content-Length counts', async () => {
      await up.setMode('libest');
      const answer = await curl(up, '/csrattrs', asRa());
      expect(answer.status).to.equal(200);
      expect(answer.body.endsWith('\r\n\0')).to.equal(true);
      expect(answer.headers).to.contain(`\r\nContent-Length: ${Buffer.byteLength(answer.body)}\r\n`);
      expect(Buffer.from(answer.body.slice(0, -1), 'base64').toString('hex')).to.equal('301506092a864886f70d01090706082a8648ce3d040302');
    });

    it("fail a one-line CSR body of >= 1024 base64 characters: 400, as OpenSSL's base64 BIO drops the line; wrapped: issued", async () => {
      await up.setMode('libest');
      const device = await opensslCsr(tmp, 'dev-libest-rsa', { keyArgs: ['-newkey', 'rsa:3072'] });
      const oneLine = join(tmp, 'dev-libest-rsa.line');
      writeFileSync(oneLine, device.csrDer.toString('base64'));
      const refused = await curl(up, '/simpleenroll', [...asRa(), ...PKCS10, '--data-binary', `@${oneLine}`]);
      expect(refused.status).to.equal(400);
      expect(refused.body).to.equal('Invalid or corrupted pkcs10 request\n');
      const wrapped = join(tmp, 'dev-libest-rsa.b64');
      await mustRun('openssl', ['base64', '-in', device.csrDerFile, '-out', wrapped]);
      expect((await curl(up, '/simpleenroll', [...asRa(), ...PKCS10, '--data-binary', `@${wrapped}`])).status).to.equal(200);
    });

    it('ok a CSR with a challengePassword from an RA with id-kp-cmcRA is issued (the PoP check is skipped for RAs)', async () => {
      await up.setMode('libest');
      const config = join(tmp, 'libest-pop.cnf');
      writeFileSync(
        config,
        '[req]\ndistinguished_name = dn\nattributes = attrs\nprompt = no\n[dn]\nCN = dev-pop\n[attrs]\nchallengePassword = AAAAAAAAAAAAAAAA\n',
      );
      const csr = join(tmp, 'dev-pop.csr');
      await mustRun('openssl', [
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        `${csr}.key`,
        '-config',
        config,
        '-out',
        csr,
      ]);
      expect((await curl(up, '/simpleenroll', [...asRa(), ...PKCS10, '--data-binary', `@${csr}`])).status).to.equal(200);
    });

    it('fail mode csrattrs-down: /csrattrs answers 500, enrollment still works', async () => {
      await up.setMode('csrattrs-down');
      expect((await curl(up, '/csrattrs', asRa())).status).to.equal(500);
      await enroll('dev-csrattrs-down', await opensslCsr(tmp, 'dev-csrattrs-down'));
    });
  });

  describe('stats', () => {
    it('ok two URLs in one curl share one keep-alive connection: one handshake, two requests', async () => {
      const start = await up.stats();
      const url = `${up.baseUrl}/cacerts`;
      const out = await mustRun('curl', [
        '-sS',
        '--cacert',
        up.rootCaFile,
        ...asRa(),
        '-w',
        '%{http_code} %{num_connects}\n',
        '-o',
        '/dev/null',
        url,
        '-o',
        '/dev/null',
        url,
      ]);
      expect(out).to.equal('200 1\n200 0\n');
      const end = await up.stats();
      expect(end.tlsHandshakes - start.tlsHandshakes).to.equal(1);
      expect(end.requests.cacerts - start.requests.cacerts).to.equal(2);
    });

    it('ok two enrollments chained with --next reuse the connection', async () => {
      const device = await opensslCsr(tmp, 'dev-next');
      const start = await up.stats();
      const one = [...asRa(), '--cacert', up.rootCaFile, ...PKCS10, '--data-binary', `@${device.csrPemFile}`, '-o', '/dev/null', '-w', '%{http_code}\n'];
      const out = await mustRun('curl', ['-sS', ...one, `${up.baseUrl}/simpleenroll`, '--next', ...one, `${up.baseUrl}/simplereenroll`]);
      expect(out).to.equal('200\n200\n');
      const end = await up.stats();
      expect(end.tlsHandshakes - start.tlsHandshakes).to.equal(1);
      expect(end.requests.simpleenroll - start.requests.simpleenroll).to.equal(1);
      expect(end.requests.simplereenroll - start.requests.simplereenroll).to.equal(1);
      expect(end.issued - start.issued).to.equal(2);
      expect(end.lastPath).to.equal('/.well-known/est/simplereenroll');
      expect(end.lastClientSubject).to.equal('CN=est-ra RA');
    });
  });

  describe('passcode, label and start mode', () => {
    let guarded: Upstream;
    before(async () => {
      guarded = await startUpstream({ clientCaFile: ra.caFile, passcode: 's3cret', label: 'plant7/line1', mode: 'forbidden' });
    });
    after(async () => guarded.close());

    it('ok --mode at start applies until changed', async () => {
      expect((await guarded.stats()).mode).to.equal('forbidden');
      const device = await opensslCsr(tmp, 'dev-start-mode');
      const answer = await curl(guarded, '/simpleenroll', [...asRa(), '--user', 'any:s3cret', ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
      expect(answer.status).to.equal(403);
      await guarded.setMode('normal');
    });

    it('ok only the label path is served', async () => {
      expect(guarded.baseUrl).to.equal(`${guarded.url}/.well-known/est/plant7/line1`);
      expect((await curl(guarded, '/cacerts', asRa())).status).to.equal(200);
      for (const path of ['/.well-known/est/cacerts', '/.well-known/est/plant7/cacerts', '/.well-known/est/plant7/line2/cacerts']) {
        const out = await mustRun('curl', ['-sS', '--cacert', guarded.rootCaFile, ...asRa(), '-o', '/dev/null', '-w', '%{http_code}', `${guarded.url}${path}`]);
        expect(out, path).to.equal('404');
      }
    });

    it('fail enroll without the passcode, or with a wrong one: 401 with a Basic challenge', async () => {
      const device = await opensslCsr(tmp, 'dev-nopass');
      for (const auth of [[], ['--user', 'any:wrong'], ['--user', 's3cret:']]) {
        const answer = await curl(guarded, '/simpleenroll', [...asRa(), ...auth, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
        expect(answer.status, auth.join(' ')).to.equal(401);
        expect(answer.headers).to.match(/\r\nWWW-Authenticate: Basic realm="upstream"\r\n/);
      }
    });

    it('ok enroll with any user name and the passcode', async () => {
      const device = await opensslCsr(tmp, 'dev-pass');
      for (const user of ['any:s3cret', ':s3cret']) {
        const cert = await enroll(`dev-pass-${user.length}`, device, ['--user', user], guarded);
        expect((await verify(guarded, cert)).stdout).to.contain(': OK');
      }
    });
  });

  describe('stop, kill and restart', () => {
    let lifecycle: Upstream;
    before(async () => {
      lifecycle = await startUpstream({ clientCaFile: ra.caFile, mode: 'pending' });
    });
    after(async () => lifecycle.close());

    it('ok restart keeps port and PKI: old certificates still chain, new ones too; mode and counters start afresh', async () => {
      await lifecycle.setMode('normal');
      const device = await opensslCsr(tmp, 'dev-restart');
      const oldCert = await enroll('dev-restart-before', device, [], lifecycle);
      const root = readFileSync(lifecycle.rootCaFile, 'utf8');
      const url = lifecycle.url;
      await lifecycle.restart();
      expect(lifecycle.url).to.equal(url);
      expect(readFileSync(lifecycle.rootCaFile, 'utf8')).to.equal(root);
      const stats = await lifecycle.stats();
      expect(stats.mode).to.equal('pending');
      expect(stats.issued).to.equal(0);
      await lifecycle.setMode('normal');
      const newCert = await enroll('dev-restart-after', device, [], lifecycle);
      expect((await verify(lifecycle, oldCert)).stdout).to.contain(': OK');
      expect((await verify(lifecycle, newCert)).stdout).to.contain(': OK');
    });

    it('ok kill: nothing listens any more; restart brings it back on the same port', async () => {
      await lifecycle.kill();
      const down = await curl(lifecycle, '/cacerts', asRa());
      expect(down.result.code, down.result.stderr).to.equal(7);
      await lifecycle.restart();
      expect((await curl(lifecycle, '/cacerts', asRa())).status).to.equal(200);
    });

    it('ok stop: SIGTERM ends it with exit code 0, even with a request hanging', async () => {
      await lifecycle.setMode('hang');
      const device = await opensslCsr(tmp, 'dev-stop');
      const hanging = curl(lifecycle, '/simpleenroll', [...asRa(), ...PKCS10, '--data-binary', `@${device.csrPemFile}`, '--max-time', '20']);
      // Stop only once the upstream holds the request.
      while ((await lifecycle.stats()).requests.simpleenroll === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await lifecycle.stop()).to.equal(0);
      const answer = await hanging;
      expect(answer.status).to.equal(0);
      expect(answer.result.code).not.to.equal(28);
    });
  });
});
