import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { forgeRsaCsr, opensslCsr } from '../helpers/csr.js';
import { certsFromP7, curl, opensslVerify, x509Field } from '../helpers/clients.js';
import { mustRun } from '../helpers/run.js';

/** 64-character lines, each ended by CRLF; the last one may be shorter. */
const WRAPPED = /^(?:[A-Za-z0-9+/]{64}\r\n)*[A-Za-z0-9+/=]{1,64}\r\n$/;
const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

describe('EST enrollment with curl + openssl against the embedded default', () => {
  let ra: TestEstRa;
  const basic = (): string[] => ['--user', `:${ra.passcode}`];

  before(async () => {
    ra = await startEstRa();
  });
  after(async () => ra.close());

  async function enroll(name: string, body: string[], extra: string[] = [], path = '/simpleenroll'): Promise<string> {
    const answer = await curl(ra, path, [...basic(), ...extra, ...body]);
    expect(answer.status, answer.body).to.equal(200);
    expect(answer.headers).to.match(/\r\nContent-Type: application\/pkcs7-mime; smime-type=certs-only\r\n/);
    expect(answer.headers).to.match(/\r\nContent-Length: \d+\r\n/);
    expect(answer.headers).to.match(/\r\nContent-Transfer-Encoding: base64\r\n/);
    expect(answer.body).to.match(WRAPPED, 'curl sends a User-Agent: base64 in 64-column CRLF lines');
    const cert = await certsFromP7(ra.dir, answer.body, name);
    expect(await opensslVerify(ra, cert)).to.contain(': OK');
    return cert;
  }

  it('ok cacerts: certs-only PKCS#7 with the issuing and root CA, base64 in 64-column lines', async () => {
    const answer = await curl(ra, '/cacerts', []);
    expect(answer.status).to.equal(200);
    expect(answer.headers).to.match(/\r\nContent-Type: application\/pkcs7-mime\r\n/);
    expect(answer.headers).to.match(/\r\nContent-Transfer-Encoding: base64\r\n/);
    expect(answer.body).to.match(WRAPPED);
    const pem = await certsFromP7(ra.dir, answer.body, 'cacerts');
    const subjects = readFileSync(pem, 'utf8').match(/^subject=.*$/gm);
    expect(subjects).to.have.length(2);
    expect(subjects?.join('\n')).to.contain('est-ra local issuing CA').and.to.contain('est-ra local root CA');
  });

  it('ok simpleenroll: PEM CSR under application/pkcs10, certificate keeps subject, SANs and key', async () => {
    const device = await opensslCsr(ra.dir, 'dev-pem', { subject: '/CN=dev-pem/O=Plant 7', addext: ['subjectAltName=DNS:dev-pem.line1.local,IP:10.1.2.3'] });
    const cert = await enroll('dev-pem-cert', [...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    expect(await x509Field(cert, '-subject')).to.equal('subject=O=Plant 7,CN=dev-pem');
    expect(await x509Field(cert, '-ext'))
      .to.contain('DNS:dev-pem.line1.local')
      .and.to.contain('IP Address:10.1.2.3');
    const csrKey = await mustRun('openssl', ['req', '-in', device.csrPemFile, '-noout', '-pubkey']);
    expect(await x509Field(cert, '-pubkey')).to.equal(csrKey.trim());
    const text = await x509Field(cert, '-text');
    expect(text).to.contain('TLS Web Client Authentication').and.to.contain('CA:FALSE');
  });

  it("ok simpleenroll: validity is the profile's one year", async () => {
    const device = await opensslCsr(ra.dir, 'dev-validity');
    const cert = await enroll('dev-validity-cert', [...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    const notBefore = Date.parse((await x509Field(cert, '-startdate')).replace('notBefore=', ''));
    const notAfter = Date.parse((await x509Field(cert, '-enddate')).replace('notAfter=', ''));
    const days = (notAfter - notBefore) / 86_400_000;
    expect(days).to.be.within(365, 365.01);
  });

  it("ok simpleenroll: DigiCert's curl example (PEM as text/plain, Basic of the bare passcode, line breaks as spaces)", async () => {
    const device = await opensslCsr(ra.dir, 'dev-digicert');
    const flattened = device.csrPem.trim().replace(/\n/g, ' ');
    const bare = Buffer.from(ra.passcode).toString('base64');
    const answer = await curl(ra, '/simpleenroll', [
      '--location',
      '-X',
      'POST',
      '--header',
      `Authorization: Basic ${bare}`,
      '--header',
      'Content-Type: text/plain',
      '--data',
      flattened,
    ]);
    expect(answer.status, answer.body).to.equal(200);
    expect(await opensslVerify(ra, await certsFromP7(ra.dir, answer.body, 'dev-digicert-cert'))).to.contain(': OK');
  });

  it("ok simpleenroll: base64 wrapped at 64 columns with Content-Transfer-Encoding (Wikipedia's curl line)", async () => {
    const device = await opensslCsr(ra.dir, 'dev-b64');
    const b64File = join(ra.dir, 'dev-b64.b64');
    writeFileSync(b64File, `${device.csrDer.toString('base64').replace(/.{64}/g, '$&\n')}\n`);
    await enroll('dev-b64-cert', [...PKCS10, '-H', 'Content-Transfer-Encoding: base64', '--data-binary', `@${b64File}`]);
  });

  it('ok simpleenroll: base64 with line breaks stripped by curl --data', async () => {
    const device = await opensslCsr(ra.dir, 'dev-data');
    const b64File = join(ra.dir, 'dev-data.b64');
    writeFileSync(b64File, `${device.csrDer.toString('base64').replace(/.{64}/g, '$&\r\n')}\r\n`);
    await enroll('dev-data-cert', [...PKCS10, '--data', `@${b64File}`]);
  });

  it('ok simpleenroll: raw DER body', async () => {
    const device = await opensslCsr(ra.dir, 'dev-der');
    await enroll('dev-der-cert', [...PKCS10, '--data-binary', `@${device.csrDerFile}`]);
  });

  it('ok simpleenroll: RSA 2048 CSR made by node-forge gets RSA key usage', async () => {
    const device = forgeRsaCsr(ra.dir, 'dev-rsa');
    const cert = await enroll('dev-rsa-cert', [...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    expect(await x509Field(cert, '-text'))
      .to.contain('Digital Signature, Key Encipherment')
      .and.to.contain('Public-Key: (2048 bit)');
  });

  it('ok simpleenroll: Ed25519 CSR', async () => {
    const device = await opensslCsr(ra.dir, 'dev-ed', { keyArgs: ['-newkey', 'ed25519'] });
    const cert = await enroll('dev-ed-cert', [...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    expect(await x509Field(cert, '-text')).to.contain('ED25519');
  });

  it('ok simpleenroll on a multi-segment label (DigiCert device-group URL shape)', async () => {
    const device = await opensslCsr(ra.dir, 'dev-label');
    await enroll('dev-label-cert', [...PKCS10, '--data-binary', `@${device.csrPemFile}`], [], '/devicetrustmanager/IOT_demo/device-group/line-1/simpleenroll');
  });

  it('#9 - fail simplereenroll whose CSR asks for another identity: 403 naming both, nothing issued', async () => {
    const device = await opensslCsr(ra.dir, 'dev-swap', { subject: '/CN=dev-swap', addext: ['subjectAltName=DNS:dev-swap.local'] });
    const first = await enroll('dev-swap-cert', [...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    const renewal = await opensslCsr(ra.dir, 'dev-swap-2', { subject: '/CN=someone-else', addext: ['subjectAltName=DNS:evil.local'] });
    const answer = await curl(ra, '/simplereenroll', ['--cert', first, '--key', device.keyFile, ...PKCS10, '--data-binary', `@${renewal.csrPemFile}`]);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal(
      "403 a renewal keeps the certificate's identity (RFC 7030 §4.2.2): it has CN=dev-swap, DNS:dev-swap.local; the CSR asks for CN=someone-else, DNS:evil.local\n",
    );
  });

  it('ok simplereenroll: the renewed certificate keeps the old subject and SANs, with a new serial and key', async () => {
    const device = await opensslCsr(ra.dir, 'dev-renew', { subject: '/CN=dev-renew/O=Plant 7', addext: ['subjectAltName=DNS:dev-renew.local'] });
    const first = await enroll('dev-renew-cert', [...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    // The same identity, its attributes in another order: a client may rebuild the subject.
    const renewal = await opensslCsr(ra.dir, 'dev-renew-2', { subject: '/O=Plant 7/CN=dev-renew', addext: ['subjectAltName=DNS:dev-renew.local'] });
    const answer = await curl(ra, '/simplereenroll', ['--cert', first, '--key', device.keyFile, ...PKCS10, '--data-binary', `@${renewal.csrPemFile}`]);
    expect(answer.status, answer.body).to.equal(200);
    const renewed = await certsFromP7(ra.dir, answer.body, 'dev-renewed');
    expect(await opensslVerify(ra, renewed)).to.contain(': OK');
    expect(await x509Field(renewed, '-subject')).to.equal('subject=O=Plant 7,CN=dev-renew');
    expect(await x509Field(renewed, '-ext')).to.contain('DNS:dev-renew.local');
    expect(await x509Field(renewed, '-serial')).not.to.equal(await x509Field(first, '-serial'));
    const newKey = await mustRun('openssl', ['req', '-in', renewal.csrPemFile, '-noout', '-pubkey']);
    expect(await x509Field(renewed, '-pubkey')).to.equal(newKey.trim());
  });

  it('fail simplereenroll with a certificate from another CA', async () => {
    const stranger = await opensslCsr(ra.dir, 'stranger');
    const self = join(ra.dir, 'stranger.crt');
    await mustRun('openssl', ['x509', '-req', '-in', stranger.csrPemFile, '-key', stranger.keyFile, '-days', '1', '-out', self]);
    const answer = await curl(ra, '/simplereenroll', ['--cert', self, '--key', stranger.keyFile, ...PKCS10, '--data-binary', `@${stranger.csrPemFile}`]);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal("403 TLS client certificate not accepted: certificate was not issued by this profile's CA\n");
  });
});
