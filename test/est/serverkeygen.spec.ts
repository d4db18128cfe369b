import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { adminCli, type RequestJson } from '../helpers/admin-cli.js';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editProfile } from '../helpers/config.js';
import { opensslCsr, opensslSelfSigned } from '../helpers/csr.js';
import { certsFromP7, curl, opensslVerify, x509Field } from '../helpers/clients.js';
import { mustRun, sh } from '../helpers/run.js';
import { createPasscode } from '../helpers/passcodes.js';
import { csrWithAttribute, keyPackageOf, serverKeygenParts, type ServerKeygenParts } from '../helpers/serverkeygen.js';

const DECRYPT_KEY_ID = '1.2.840.113549.1.9.16.2.37';
const ASYMM_DECRYPT_KEY_ID = '1.2.840.113549.1.9.16.2.54';

describe('serverkeygen (RFC 7030 §4.4): est-ra makes the key, curl and openssl read the answer', function () {
  this.timeout(60_000);
  let ra: TestEstRa;

  before(async () => {
    ra = await startEstRa({
      editConfig: (yaml) => {
        let text = editProfile(yaml, 'demo', (profile) => {
          profile.key_generation_option = 'either';
          profile.allowed_key_types = ['p_256', 'rsa_2048'];
        });
        // Two more profiles on the same CA: server_side with one key type, and the default (client_side).
        text = addProfile(text, 'rsa-only', { labels: ['rsa-only'], key_generation_option: 'server_side', allowed_key_types: ['rsa_2048'] });
        return addProfile(text, 'client-keys', { labels: ['client-keys'], key_generation_option: 'client_side' });
      },
    });
  });
  after(async () => ra.close());

  /** `curl --user :<passcode> --data-binary @device.csr .../serverkeygen`, as DigiCert's examples enroll, the PEM CSR as text/plain. */
  const serverkeygen = (path: string, csrFile: string, extra: readonly string[] = []) =>
    curl(ra, path, ['--user', `:${ra.passcode}`, '-H', 'Content-Type: text/plain', '--data-binary', `@${csrFile}`, ...extra]);

  /** The key part read by `openssl pkey`, the certificate by `openssl pkcs7 -print_certs`, both public keys compared. */
  async function checkKeyAndCertificate(parts: ServerKeygenParts, name: string, keyDer: Buffer): Promise<{ certFile: string; keyText: string }> {
    const keyFile = join(ra.dir, `${name}.key.der`);
    writeFileSync(keyFile, keyDer);
    const keyText = await mustRun('openssl', ['pkey', '-inform', 'DER', '-in', keyFile, '-noout', '-text']);
    const keyPublic = await mustRun('openssl', ['pkey', '-inform', 'DER', '-in', keyFile, '-pubout']);
    const certFile = parts.certFile;
    expect(await opensslVerify(ra, certFile)).to.contain(': OK');
    expect(await x509Field(certFile, '-pubkey')).to.equal(keyPublic.trim());
    return { certFile, keyText };
  }

  it('ok P-256: a multipart/mixed answer of an application/pkcs8 key and a certs-only certificate for it; a new key, not the CSR one', async () => {
    const device = await opensslCsr(ra.dir, 'skg-p256', { subject: '/CN=skg-p256/O=Line 1' });
    const answer = await serverkeygen('/serverkeygen', device.csrPemFile);
    expect(answer.status, answer.body).to.equal(200);
    const parts = await serverKeygenParts(ra.dir, 'skg-p256', answer);
    expect(parts.keyContentType).to.equal('application/pkcs8');
    expect(parts.certContentType).to.equal('application/pkcs7-mime; smime-type=certs-only');
    // 64-column base64 lines, each ended by CRLF, in both parts (README "Base64 framing").
    for (const body of [parts.keyBase64, parts.certBase64]) for (const line of body.split('\r\n').slice(0, -2)) expect(line).to.have.length(64);
    const { certFile, keyText } = await checkKeyAndCertificate(parts, 'skg-p256', parts.keyDer);
    expect(keyText).to.contain('NIST CURVE: P-256');
    expect(await x509Field(certFile, '-subject')).to.equal('subject=O=Line 1,CN=skg-p256');
    const csrPublic = await mustRun('openssl', ['req', '-in', device.csrPemFile, '-noout', '-pubkey']);
    expect(await x509Field(certFile, '-pubkey')).not.to.equal(csrPublic.trim());
    expect(answer.headers).to.match(/^x-request-id: /im);
  });

  it("ok the README's lines: curl, awk and openssl split and read the answer as printed", async () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const block = /```sh\n(curl [^\n]*\/serverkeygen -o answer\.txt\n[\s\S]*?)```/.exec(readme)![1]!;
    const work = join(ra.dir, 'readme-skg');
    mkdirSync(work);
    await opensslCsr(work, 'device');
    await certsFromP7(work, (await curl(ra, '/cacerts', [])).body, 'cacerts');
    const lines = block.replaceAll('../pki/root-ca.crt', ra.rootCaFile).replaceAll('<passcode>', ra.passcode).replaceAll('https://127.0.0.1:8443', ra.url);
    const result = await sh(lines, work);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.contain('device.crt: OK');
    expect(await x509Field(join(work, 'device.crt'), '-pubkey')).to.equal(
      (await mustRun('openssl', ['pkey', '-in', join(work, 'device.key'), '-pubout'])).trim(),
    );
  });

  it('ok RSA-2048: the CSR key type chooses among the allowed ones; a profile with one type makes that one whatever the CSR key', async () => {
    const rsa = await opensslCsr(ra.dir, 'skg-rsa', { keyArgs: ['-newkey', 'rsa:2048'] });
    const first = await serverkeygen('/serverkeygen', rsa.csrPemFile);
    expect(first.status, first.body).to.equal(200);
    const parts = await serverKeygenParts(ra.dir, 'skg-rsa', first);
    expect((await checkKeyAndCertificate(parts, 'skg-rsa', parts.keyDer)).keyText).to.contain('Private-Key: (2048 bit, 2 primes)');

    const p256 = await opensslCsr(ra.dir, 'skg-rsa-only');
    const only = await serverkeygen('/rsa-only/serverkeygen', p256.csrPemFile);
    expect(only.status, only.body).to.equal(200);
    const onlyParts = await serverKeygenParts(ra.dir, 'skg-rsa-only', only);
    expect((await checkKeyAndCertificate(onlyParts, 'skg-rsa-only', onlyParts.keyDer)).keyText).to.contain('Private-Key: (2048 bit, 2 primes)');

    const p384 = await opensslCsr(ra.dir, 'skg-p384', { keyArgs: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'] });
    const refused = await serverkeygen('/serverkeygen', p384.csrPemFile);
    expect(refused.status).to.equal(403);
    expect(refused.body).to.contain('403 key type p_384 not allowed by profile (allowed: p_256, rsa_2048)');
  });

  it('ok the same CSR twice gets two keys and two certificates, each request recorded and taking a passcode use', async () => {
    const passcode = await createPasscode(ra, '--max-uses', '2');
    const device = await opensslCsr(ra.dir, 'skg-again');
    const send = () =>
      curl(ra, '/serverkeygen', ['--user', `:${passcode}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', `@${device.csrPemFile}`]);
    const [first, second] = [await send(), await send()];
    expect([first.status, second.status]).to.deep.equal([200, 200]);
    const [a, b] = [await serverKeygenParts(ra.dir, 'skg-again-1', first), await serverKeygenParts(ra.dir, 'skg-again-2', second)];
    expect(a.keyDer.equals(b.keyDer)).to.equal(false);
    expect(await x509Field(a.certFile, '-serial')).not.to.equal(await x509Field(b.certFile, '-serial'));
    const ids = [first, second].map((answer) => /^x-request-id: (\S+)/im.exec(answer.headers)![1]!);
    expect(ids[0]).not.to.equal(ids[1]);
    for (const id of ids) {
      const [record] = await adminCli(join(ra.dir, 'config.yaml')).json<RequestJson>('requests', 'show', id);
      expect(record?.operation).to.equal('serverkeygen');
      expect(record?.outcome).to.equal('issued');
    }
    // Both uses taken: a third request is refused.
    expect((await send()).status).to.equal(401);
  });

  it('ok the private key is in no log line and not in the store', async () => {
    const device = await opensslCsr(ra.dir, 'skg-secret');
    const answer = await serverkeygen('/serverkeygen', device.csrPemFile);
    expect(answer.status).to.equal(200);
    const parts = await serverKeygenParts(ra.dir, 'skg-secret', answer);
    // The P-256 private scalar: PrivateKeyInfo's ECPrivateKey privateKey OCTET STRING (30 81 87 ... 04 20 <32 octets>).
    expect(parts.keyDer.subarray(34, 36).toString('hex')).to.equal('0420');
    const scalar = parts.keyDer.subarray(36, 68);
    const needle = scalar.toString('hex');
    const logs = ra.logs.join('\n');
    for (const form of [needle, scalar.toString('base64').slice(0, 24), parts.keyBase64.replace(/\r\n/g, '').slice(48, 88)]) expect(logs).not.to.contain(form);
    for (const file of ['est-ra.db', 'est-ra.db-wal'].filter((f) => existsSync(join(ra.dir, f))))
      expect(readFileSync(join(ra.dir, file)).toString('hex'), file).not.to.contain(needle);
  });

  it('fail a client_side profile answers 501 (serverkeygen is optional, RFC 7030 §4.4); server_side refuses simpleenroll with 403', async () => {
    const device = await opensslCsr(ra.dir, 'skg-kinds');
    const notOffered = await serverkeygen('/client-keys/serverkeygen', device.csrPemFile);
    expect(notOffered.status).to.equal(501);
    expect(notOffered.body).to.equal(
      "501 profile 'client-keys' does not generate keys (key_generation_option: client_side): make the key and use simpleenroll\n",
    );
    const enroll = await curl(ra, '/rsa-only/simpleenroll', [
      '--user',
      `:${ra.passcode}`,
      '-H',
      'Content-Type: application/pkcs10',
      '--data-binary',
      `@${device.csrPemFile}`,
    ]);
    expect(enroll.status).to.equal(403);
    expect(enroll.body).to.equal("403 this profile generates its devices' keys (key_generation_option: server_side): use /serverkeygen, not /simpleenroll\n");
    // 'either' still enrolls a client's key.
    const either = await curl(ra, '/simpleenroll', [
      '--user',
      `:${ra.passcode}`,
      '-H',
      'Content-Type: application/pkcs10',
      '--data-binary',
      `@${device.csrPemFile}`,
    ]);
    expect(either.status).to.equal(200);
  });

  for (const kind of ['EC P-256', 'RSA-2048'] as const) {
    it(`ok encrypted to the TLS client certificate (${kind}) its AsymmetricDecryptKeyIdentifier names: openssl cms -decrypt opens it`, async () => {
      const name = kind === 'EC P-256' ? 'skg-enc-ec' : 'skg-enc-rsa';
      const client =
        kind === 'EC P-256' ? await opensslSelfSigned(ra.dir, `${name}-tls`, { subject: `/CN=${name}-tls` }) : await rsaSelfSigned(ra.dir, `${name}-tls`);
      const keyId = Buffer.from((await x509Text(client.certFile)).match(/Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/)![1]!.replace(/:/g, ''), 'hex');
      const csrFile = await csrWithAttribute(ra.dir, name, ASYMM_DECRYPT_KEY_ID, keyId);
      const answer = await serverkeygen('/serverkeygen', csrFile, ['--cert', client.certFile, '--key', client.keyFile]);
      expect(answer.status, answer.body).to.equal(200);
      const parts = await serverKeygenParts(ra.dir, name, answer);
      expect(parts.keyContentType).to.equal('application/pkcs7-mime; smime-type=server-generated-key');
      const keyDer = await keyPackageOf(ra.dir, name, parts.keyDer, client);
      await checkKeyAndCertificate(parts, name, keyDer);
    });
  }

  it('fail DecryptKeyIdentifier (a shared symmetric key est-ra does not have), or an AsymmetricDecryptKeyIdentifier of no certificate of the connection: 400', async () => {
    const symmetric = await csrWithAttribute(ra.dir, 'skg-sym', DECRYPT_KEY_ID, Buffer.from('0102030405060708', 'hex'));
    const refused = await serverkeygen('/serverkeygen', symmetric);
    expect(refused.status).to.equal(400);
    expect(refused.body).to.contain(
      '400 the CSR asks for the key encrypted with a shared symmetric key (DecryptKeyIdentifier, RFC 7030 §4.4.1.1); est-ra holds none',
    );
    const asymmetric = await csrWithAttribute(ra.dir, 'skg-nocert', ASYMM_DECRYPT_KEY_ID, Buffer.from('a1b2c3', 'hex'));
    const noCertificate = await serverkeygen('/serverkeygen', asymmetric);
    expect(noCertificate.status).to.equal(400);
    expect(noCertificate.body).to.equal(
      "400 AsymmetricDecryptKeyIdentifier a1b2c3 is not the key of this connection's TLS client certificate: present that certificate (RFC 7030 §4.4.1.2)\n",
    );
  });
});

/** Adds a profile on the demo profile's CA and policy. */
function addProfile(yaml: string, name: string, settings: Record<string, unknown>): string {
  let demo: Record<string, unknown> = {};
  editProfile(yaml, 'demo', (profile) => (demo = profile));
  return editProfile(yaml.replace(/^profiles:\n/m, `profiles:\n  ${name}: {}\n`), name, (profile) => {
    Object.assign(profile, { ...demo, default: false, ...settings });
  });
}

async function rsaSelfSigned(dir: string, name: string): Promise<{ certFile: string; keyFile: string }> {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  await mustRun('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', `/CN=${name}`, '-days', '30']);
  return { certFile, keyFile };
}

function x509Text(certFile: string): Promise<string> {
  return mustRun('openssl', ['x509', '-in', certFile, '-noout', '-text']);
}
