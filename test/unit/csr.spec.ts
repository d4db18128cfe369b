import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import forge from 'node-forge';
import { parseAndVerifyCsr } from '../../src/pki/csr.js';
import { EstError } from '../../src/errors.js';
import { opensslCsr, withBrokenSignature } from '../helpers/csr.js';

/** Proof of possession for every signature algorithm a device may use (RFC 2986 §4.2). */
describe('CSR signature verification', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-csr-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cases: [string, string, () => Promise<Buffer>][] = [
    ['ECDSA P-256 with SHA-256', 'p_256', async () => (await opensslCsr(dir, 'p256')).csrDer],
    [
      'ECDSA P-384 with SHA-384',
      'p_384',
      async () => (await opensslCsr(dir, 'p384', { keyArgs: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-sha384'] })).csrDer,
    ],
    [
      'ECDSA P-521 with SHA-512',
      'p_521',
      async () => (await opensslCsr(dir, 'p521', { keyArgs: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521', '-sha512'] })).csrDer,
    ],
    ['RSA 2048 PKCS#1 v1.5 with SHA-256', 'rsa_2048', async () => (await opensslCsr(dir, 'rsa', { keyArgs: ['-newkey', 'rsa:2048'] })).csrDer],
    [
      'RSA-PSS (verified by the library)',
      'rsa_2048',
      async () =>
        (await opensslCsr(dir, 'pss', { keyArgs: ['-newkey', 'rsa:2048', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32'] })).csrDer,
    ],
    ['Ed25519', 'ed_25519', async () => (await opensslCsr(dir, 'ed', { keyArgs: ['-newkey', 'ed25519'] })).csrDer],
    [
      'RSA 1024 with SHA-1, made by node-forge',
      'rsa_1024',
      async () => {
        const keys = forge.pki.rsa.generateKeyPair(1024);
        const csr = forge.pki.createCertificationRequest();
        csr.publicKey = keys.publicKey;
        csr.setSubject([{ name: 'commonName', value: 'old-device' }]);
        csr.sign(keys.privateKey, forge.md.sha1.create());
        return Buffer.from(forge.asn1.toDer(forge.pki.certificationRequestToAsn1(csr)).getBytes(), 'binary');
      },
    ],
  ];

  for (const [name, keyType, make] of cases) {
    it(`ok ${name}`, async () => {
      const csr = await parseAndVerifyCsr(await make());
      expect(csr.keyType).to.equal(keyType);
    });
    it(`fail ${name} with a flipped signature bit`, async () => {
      const broken = withBrokenSignature(await make());
      const error = await parseAndVerifyCsr(broken).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).to.be.instanceOf(EstError);
      expect((error as EstError).code).to.equal('EST_CSR_SIGNATURE');
    });
  }

  it('ok subject, key and subjectAltName come out as the DER the device signed', async () => {
    const made = await opensslCsr(dir, 'san', {
      subject: '/CN=san/O=Plant',
      addext: ['subjectAltName=DNS:a.example,IP:10.0.0.9', 'keyUsage=digitalSignature'],
    });
    const csr = await parseAndVerifyCsr(made.csrDer);
    expect(made.csrDer.includes(csr.subjectDer)).to.equal(true);
    expect(made.csrDer.includes(csr.subjectPublicKeyInfo)).to.equal(true);
    expect(csr.subjectAltName?.toString('hex')).to.match(/^30..0603551d11/);
    expect(csr.subject).to.equal('CN=san, O=Plant');
  });

  it('ok a key outside the DigiCert names is described, so a refusal can say what was sent', async () => {
    const secp256k1 = await opensslCsr(dir, 'k1', { keyArgs: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1'] });
    expect((await parseAndVerifyCsr(secp256k1.csrDer)).keyType).to.equal('ecdsa_secp256k1');
    const rsa3072 = await opensslCsr(dir, 'rsa3072', { keyArgs: ['-newkey', 'rsa:3072'] });
    expect((await parseAndVerifyCsr(rsa3072.csrDer)).keyType).to.equal('rsa_3072');
  });

  it('ok challengePassword as a BMPString (UTF-16, made by node-forge) comes out as text', async () => {
    // node-forge's typings call the string type a tag class; at run time it is the universal tag number.
    const keys = forge.pki.rsa.generateKeyPair(1024);
    const csr = forge.pki.createCertificationRequest();
    csr.publicKey = keys.publicKey;
    csr.setSubject([{ name: 'commonName', value: 'bmp' }]);
    csr.setAttributes([{ name: 'challengePassword', value: 'pässwort', valueTagClass: forge.asn1.Type.BMPSTRING as unknown as forge.asn1.Class }]);
    csr.sign(keys.privateKey, forge.md.sha256.create());
    const der = Buffer.from(forge.asn1.toDer(forge.pki.certificationRequestToAsn1(csr)).getBytes(), 'binary');
    expect((await parseAndVerifyCsr(der)).challengePassword).to.equal('pässwort');
  });

  it('fail bytes after the request, and BER indefinite lengths, are a malformed request', async () => {
    const der = (await opensslCsr(dir, 'trailing')).csrDer;
    for (const bad of [Buffer.concat([der, Buffer.from([0])]), Buffer.concat([Buffer.from([0x30, 0x80]), der.subarray(4), Buffer.from([0, 0])])]) {
      const error = await parseAndVerifyCsr(bad).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect((error as EstError).code).to.equal('EST_CSR_MALFORMED');
    }
  });
});
