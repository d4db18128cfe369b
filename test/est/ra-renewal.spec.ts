import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { subtle, x509 } from '../../src/pki/x509.js';
import { loadPemIdentity } from '../../src/upstream/ra-identity.js';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig } from '../helpers/config.js';
import { opensslCsr } from '../helpers/csr.js';
import { curl } from '../helpers/clients.js';
import { mustRun } from '../helpers/run.js';
import { makeRaIdentity, startUpstream, type Upstream } from '../helpers/upstream.js';
import { eventually } from '../helpers/wait.js';

const P256: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };

/** An RA certificate under the test RA CA that expires `minutes` from now (openssl x509 -req counts in days only). */
async function shortLivedRaCertificate(caFile: string, caKeyFile: string, minutes: number): Promise<{ certificatePem: string; keyPem: string }> {
  const ca = new x509.X509Certificate(readFileSync(caFile, 'utf8'));
  const caKey = await subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(readFileSync(caKeyFile, 'utf8')), P256, false, ['sign']);
  const keys = await subtle.generateKey(P256, true, ['sign', 'verify']);
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: `4${randomBytes(15).toString('hex')}`,
    subject: 'CN=est-ra RA',
    issuer: ca.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + minutes * 60_000),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth, '1.3.6.1.5.5.7.3.28']),
      await x509.AuthorityKeyIdentifierExtension.create(ca),
    ],
  });
  const keyPem = x509.PemConverter.encode(await subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
  return { certificatePem: `${certificate.toString('pem')}\n`, keyPem: `${keyPem}\n` };
}

/** Issue #11: est-ra keeps its own RA certificate alive at the upstream, without a restart. */
describe('the RA certificate renews itself before it expires (#11)', function () {
  this.timeout(60_000);
  let upstream: Upstream;
  let ra: TestEstRa;
  let certFile: string;
  let keyFile: string;
  let firstPem: string;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-ra-renewal-'));
    const identity = await makeRaIdentity(dir);
    // Failing at first: the renewal must be retried, counted and logged before it succeeds.
    upstream = await startUpstream({ dir: join(dir, 'upstream'), clientCaFile: identity.caFile, mode: 'error500' });
    const short = await shortLivedRaCertificate(identity.caFile, identity.caKeyFile, 5);
    certFile = join(dir, 'ra-short.crt');
    keyFile = join(dir, 'ra-short.key');
    writeFileSync(certFile, short.certificatePem);
    writeFileSync(keyFile, short.keyPem, { mode: 0o600 });
    firstPem = short.certificatePem;
    ra = await startEstRa({
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          config.ops = { listen: { host: '127.0.0.1', port: 0 } };
          const demo = (config.profiles as Record<string, Record<string, unknown>>).demo!;
          demo.upstream = 'est';
          delete demo.local_ca;
          demo.est = {
            url: upstream.baseUrl,
            ra_certificate: certFile,
            ra_key: keyFile,
            trust_anchors: [upstream.rootCaFile],
            ra_renewal: { renew_before: '30d', retry_every: '1s' },
          };
        }),
    });
  });
  after(async () => {
    await ra.close();
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fail while the upstream refuses: retried, logged at error with the days left, counted in /metrics', async () => {
    await eventually(() => (ra.logs.filter((line) => line.includes('RA certificate renewal failed')).length >= 2 ? true : undefined));
    const failure = JSON.parse(ra.logs.find((line) => line.includes('RA certificate renewal failed'))!) as Record<string, unknown>;
    expect(failure).to.include({ level: 'error', profile: 'demo', days_left: 0 });
    const metrics = await (await fetch(`${ra.server.opsUrl!}/metrics`)).text();
    expect(metrics).to.match(/est_ra_ra_certificate_renewal_failures_total\{profile="demo"\} [2-9]/);
    expect(metrics).to.match(/est_ra_certificate_days_left\{kind="ra",profile="demo",subject="CN=est-ra RA"\} 0\n/);
    expect(readFileSync(certFile, 'utf8')).to.equal(firstPem);
  });

  it('ok once the upstream answers: a new certificate and key from the upstream CA, written in place, used without a restart', async () => {
    await upstream.setMode('normal');
    await eventually(() => (readFileSync(certFile, 'utf8') !== firstPem ? true : undefined));
    expect(await mustRun('openssl', ['verify', '-CAfile', upstream.rootCaFile, '-untrusted', upstream.issuingCaFile, certFile])).to.contain(': OK');
    expect(await mustRun('openssl', ['x509', '-in', certFile, '-noout', '-subject'])).to.equal('subject=CN = est-ra RA\n');
    const [certKey, fileKey] = await Promise.all([
      mustRun('openssl', ['x509', '-in', certFile, '-noout', '-pubkey']),
      mustRun('openssl', ['pkey', '-in', keyFile, '-pubout']),
    ]);
    expect(certKey).to.equal(fileKey);
    const serial = (await mustRun('openssl', ['x509', '-in', certFile, '-noout', '-serial'])).trim().replace('serial=', '');
    expect(ra.logs.some((line) => line.includes('RA certificate renewed'))).to.equal(true);

    // The next forwarded enrollment goes up with the new RA certificate.
    const device = await opensslCsr(ra.dir, 'after-renewal');
    const answer = await curl(ra, '/simpleenroll', [
      '--user',
      `:${ra.passcode}`,
      '-H',
      'Content-Type: application/pkcs10',
      '--data-binary',
      `@${device.csrPemFile}`,
    ]);
    expect(answer.status).to.equal(200);
    expect((await upstream.stats()).lastClientSerial?.toUpperCase()).to.equal(serial.toUpperCase());
    const metrics = await (await fetch(`${ra.server.opsUrl!}/metrics`)).text();
    const daysLeft = Number(/est_ra_certificate_days_left\{kind="ra",profile="demo",subject="CN=est-ra RA"\} ([0-9.]+)/.exec(metrics)![1]);
    expect(daysLeft).to.be.greaterThan(300);
  });

  it('ok a renewal that stopped between its two renames is completed at the next load', () => {
    // As if est-ra died after renaming the new key into place but before the certificate: new key, old certificate.
    const renewedPem = readFileSync(certFile, 'utf8');
    copyFileSync(certFile, `${certFile}.next`);
    writeFileSync(certFile, firstPem);
    const identity = loadPemIdentity({ certificate: certFile, key: keyFile });
    expect(identity.certificate.raw.equals(Buffer.from(new x509.X509Certificate(renewedPem).rawData))).to.equal(true);
    expect(readFileSync(certFile, 'utf8')).to.equal(renewedPem);
    // A key that matches nothing is still refused, with the files named.
    renameSync(keyFile, `${keyFile}.renewed`);
    copyFileSync(join(ra.dir, 'pki', 'issuing-ca.key'), keyFile);
    expect(() => loadPemIdentity({ certificate: certFile, key: keyFile })).to.throw(`${keyFile} is not the key of ${certFile}`);
    renameSync(`${keyFile}.renewed`, keyFile);
  });
});
