import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { generateServerKey, isKeyIdentifierOf, pkcs8Of, requestForServerKey } from '../../src/pki/server-key.js';
import { encodeSubject, encodeSubjectAltName } from '../../src/pki/names.js';
import { CertificateView } from '../../src/pki/certificate-view.js';
import { multipartMixed } from '../../src/est/multipart.js';
import { mustRun } from '../helpers/run.js';
import { opensslSelfSigned } from '../helpers/csr.js';

describe("server-generated keys (RFC 7030 §4.4): the key, est-ra's CSR for it, the key identifier, the multipart answer", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-server-key-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const subjectDer = encodeSubject([
    { kind: 'common_name', value: 'sensor-17' },
    { kind: 'organization_name', value: 'Line 3' },
  ]);
  const subjectAltName = encodeSubjectAltName([{ kind: 'dns_name', value: 'sensor-17.line3.plant.local' }], false);

  for (const [keyType, opensslSays] of [
    ['p_256', 'NIST CURVE: P-256'],
    ['p_384', 'NIST CURVE: P-384'],
    ['p_521', 'NIST CURVE: P-521'],
    ['rsa_2048', 'Public-Key: (2048 bit)'],
    ['ed_25519', 'ED25519 Public-Key'],
    ['ed_448', 'ED448 Public-Key'],
  ] as const) {
    it(`ok ${keyType}: a new key, and a CSR for it that openssl req -verify accepts with the names asked for`, async () => {
      const key = await generateServerKey(keyType);
      const csr = await requestForServerKey(key, { subjectDer, subjectAltName });
      expect(csr.keyType).to.equal(keyType);
      const file = join(dir, `${keyType}.csr.der`);
      writeFileSync(file, csr.der);
      const text = await mustRun('openssl', ['req', '-inform', 'DER', '-in', file, '-verify', '-noout', '-text', '-nameopt', 'RFC2253']);
      expect(text).to.contain(opensslSays);
      expect(text).to.contain('Subject: CN=sensor-17,O=Line 3');
      expect(text).to.contain('DNS:sensor-17.line3.plant.local');
      const keyFile = join(dir, `${keyType}.key.der`);
      writeFileSync(keyFile, pkcs8Of(key));
      const publicKey = await mustRun('openssl', ['pkey', '-inform', 'DER', '-in', keyFile, '-pubout']);
      expect(await mustRun('openssl', ['req', '-inform', 'DER', '-in', file, '-noout', '-pubkey'])).to.equal(publicKey);
    });
  }

  it('ok a CSR without subjectAltName has no extensionRequest', async () => {
    const csr = await requestForServerKey(await generateServerKey('p_256'), { subjectDer });
    expect(csr.subjectAltName).to.equal(undefined);
    expect(csr.der.includes(Buffer.from('06092a864886f70d01090e', 'hex'))).to.equal(false);
  });

  it('ok isKeyIdentifierOf: the subjectKeyIdentifier openssl wrote, nothing else', async () => {
    const { certFile } = await opensslSelfSigned(dir, 'recipient', { subject: '/CN=recipient' });
    await mustRun('openssl', ['x509', '-in', certFile, '-outform', 'DER', '-out', join(dir, 'recipient.der')]);
    const certificate = CertificateView.parse(readFileSync(join(dir, 'recipient.der')));
    const text = await mustRun('openssl', ['x509', '-in', certFile, '-noout', '-ext', 'subjectKeyIdentifier']);
    const keyId = Buffer.from(/\n\s*([0-9A-F:]+)/.exec(text)![1]!.replace(/:/g, ''), 'hex');
    expect(isKeyIdentifierOf(certificate, keyId)).to.equal(true);
    expect(isKeyIdentifierOf(certificate, Buffer.from('a1b2c3', 'hex'))).to.equal(false);
  });

  it('ok multipart/mixed: the boundary never occurs in a part, every line ends in CRLF, parts are base64 in 64 columns', () => {
    const der = Buffer.alloc(200, 0xfb); // base64 '+/v7...' : the characters nearest a boundary's
    const { contentType, body } = multipartMixed(
      [
        { contentType: 'application/pkcs8', der },
        { contentType: 'application/pkcs7-mime; smime-type=certs-only', der },
      ],
      'wrapped',
    );
    const boundary = /^multipart\/mixed; boundary=(est-ra-[0-9a-f]{24})$/.exec(contentType)![1]!;
    const text = body.toString('latin1');
    expect(text.split(`--${boundary}`)).to.have.length(4);
    expect(text.endsWith(`--${boundary}--\r\n`)).to.equal(true);
    expect(text.replace(/\r\n/g, '')).not.to.match(/\n|\r/);
    for (const line of text.split('\r\n').filter((l) => /^[A-Za-z0-9+/=]+$/.test(l))) expect(line.length).to.be.at.most(64);
  });
});
