import { X509Certificate as OpenSslCertificate, generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import { CertificateView } from '../../src/pki/certificate-view.js';
import {
  children,
  contextTag,
  objectIdentifier,
  octetString,
  readTime,
  readTlv,
  sequence,
  smallInteger,
  TAG,
  time,
  tlv,
  unsignedInteger,
} from '../../src/pki/der.js';
import { CertificateSigner, subjectKeyIdentifierExtension } from '../../src/pki/certificate-signer.js';
import { buildCertsOnly, parseCertsOnly } from '../../src/pki/certs-only.js';
import { bytes, x509 } from '../../src/pki/x509.js';
import { newSerialNumber } from '../../src/pki/serial.js';
import { mustRun } from '../helpers/run.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('DER encoding (X.690) of the hot path', () => {
  it('ok INTEGER keeps positive values positive and drops redundant zeros', () => {
    expect(hex(unsignedInteger(Buffer.from([0x7f])))).to.equal('02017f');
    expect(hex(unsignedInteger(Buffer.from([0x80])))).to.equal('02020080');
    expect(hex(unsignedInteger(Buffer.from([0x00, 0x00, 0x80])))).to.equal('02020080');
    expect(hex(unsignedInteger(Buffer.from([0x00])))).to.equal('020100');
  });

  it('ok OBJECT IDENTIFIER with multi-byte arcs', () => {
    expect(hex(objectIdentifier('1.2.840.113549.1.7.2'))).to.equal('06092a864886f70d010702');
    expect(hex(objectIdentifier('2.5.29.17'))).to.equal('0603551d11');
  });

  it('ok lengths switch to the long form at 128 and grow with the content', () => {
    expect(hex(octetString(Buffer.alloc(127))).slice(0, 4)).to.equal('047f');
    expect(hex(octetString(Buffer.alloc(128))).slice(0, 6)).to.equal('048180');
    expect(hex(octetString(Buffer.alloc(256))).slice(0, 8)).to.equal('04820100');
    expect(hex(octetString(Buffer.alloc(65536))).slice(0, 10)).to.equal('0483010000');
    expect(hex(contextTag(3, sequence()))).to.equal('a3023000');
  });

  it('ok UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5)', () => {
    expect(
      time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59)))
        .toString('latin1')
        .slice(2),
    ).to.equal('491231235959Z');
    expect(hex(time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59)))).slice(0, 4)).to.equal('170d');
    expect(
      time(new Date(Date.UTC(2050, 0, 1)))
        .toString('latin1')
        .slice(2),
    ).to.equal('20500101000000Z');
    expect(hex(time(new Date(Date.UTC(2050, 0, 1)))).slice(0, 4)).to.equal('180f');
  });
});

describe('certificates signed from assembled DER, read back by OpenSSL and @peculiar/x509', () => {
  for (const [name, keyType, options] of [
    ['P-256', 'ec', { namedCurve: 'P-256' }],
    ['P-384', 'ec', { namedCurve: 'P-384' }],
    ['RSA 2048', 'rsa', { modulusLength: 2048 }],
    ['Ed25519', 'ed25519', {}],
  ] as const) {
    it(`ok issuing CA with a ${name} key`, async () => {
      const ca = generateKeyPairSync(keyType as 'ec', options as { namedCurve: string });
      const caPem = ca.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
      const caSpki = ca.publicKey.export({ format: 'der', type: 'spki' });
      const caName = new x509.Name('CN=unit CA');
      const caCertificateDer = await CertificateSigner.create({ subjectName: caName } as x509.X509Certificate, caPem).sign({
        serialNumber: '01',
        notBefore: new Date(Date.UTC(2026, 0, 1)),
        notAfter: new Date(Date.UTC(2060, 0, 1)),
        subject: Buffer.from(caName.toArrayBuffer()),
        subjectPublicKeyInfo: caSpki,
        extensions: [Buffer.from(new x509.BasicConstraintsExtension(true, 0, true).rawData)],
      });
      const caCertificate = new x509.X509Certificate(bytes(caCertificateDer));
      const device = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const deviceSpki = device.publicKey.export({ format: 'der', type: 'spki' });
      const serial = newSerialNumber();
      const der = await CertificateSigner.create(caCertificate, caPem).sign({
        serialNumber: serial,
        notBefore: new Date(Date.UTC(2026, 10, 25, 12)),
        notAfter: new Date(Date.UTC(2051, 10, 25, 12)),
        subject: Buffer.from(new x509.Name('CN=device, O=Plant').toArrayBuffer()),
        subjectPublicKeyInfo: deviceSpki,
        extensions: [subjectKeyIdentifierExtension(deviceSpki)],
      });
      const openssl = new OpenSslCertificate(der);
      expect(openssl.verify(ca.publicKey)).to.equal(true);
      expect(openssl.serialNumber.toLowerCase()).to.equal(serial);
      expect(openssl.validTo).to.equal('Nov 25 12:00:00 2051 GMT');
      const peculiar = new x509.X509Certificate(bytes(der));
      expect(await peculiar.verify({ publicKey: caCertificate.publicKey, signatureOnly: true })).to.equal(true);
      expect(peculiar.subject).to.equal('CN=device, O=Plant');
      const ski = peculiar.getExtension(x509.SubjectKeyIdentifierExtension);
      expect(ski?.keyId).to.equal((await x509.SubjectKeyIdentifierExtension.create(peculiar.publicKey)).keyId);
    });
  }
});

describe('certs-only PKCS#7 (RFC 5652 §5.1) read back by pkijs and openssl', () => {
  it('ok two certificates in order, no signers', async () => {
    const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
    const make = (cn: string): Promise<x509.X509Certificate> =>
      x509.X509CertificateGenerator.createSelfSigned({ name: `CN=${cn}`, keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
    const certificates = [Buffer.from((await make('first')).rawData), Buffer.from((await make('second')).rawData)];
    const p7 = buildCertsOnly(certificates);
    expect(parseCertsOnly(p7)).to.deep.equal(certificates);
    const printed = await mustRun('openssl', ['pkcs7', '-inform', 'DER', '-print_certs', '-noout'], { input: p7 });
    expect(printed.match(/subject=.*/g)).to.deep.equal(['subject=CN = first', 'subject=CN = second']);
    const parsed = await mustRun('openssl', ['asn1parse', '-inform', 'DER'], { input: p7 });
    expect(parsed).to.contain('pkcs7-signedData').and.to.contain('pkcs7-data');
  });
});

describe('reading DER from an upstream (untrusted)', () => {
  it('fail truncated, overlong and indefinite lengths throw instead of reading past the data', () => {
    expect(() => readTlv(Buffer.from([0x30]), 0)).to.throw('truncated');
    expect(() => readTlv(Buffer.from([0x30, 0x05, 0x01]), 0)).to.throw('runs past');
    expect(() => readTlv(Buffer.from([0x30, 0x85, 1, 1, 1, 1, 1]), 0)).to.throw('length field too long');
    expect(() => readTlv(Buffer.from([0x30, 0x80, 0, 0]), 0)).to.throw('indefinite');
    expect(() => children(Buffer.from([0x30, 0x03, 0x04, 0x05, 0x00]))).to.throw('runs past');
  });

  it('ok a BER certs-only with indefinite lengths (as some CMS encoders send) still yields its certificate', async () => {
    const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
    const certificate = Buffer.from(
      (await x509.X509CertificateGenerator.createSelfSigned({ name: 'CN=ber', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } })).rawData,
    );
    const eoc = Buffer.from([0, 0]);
    const ber = Buffer.concat([
      Buffer.from([0x30, 0x80]),
      objectIdentifier('1.2.840.113549.1.7.2'),
      Buffer.from([0xa0, 0x80, 0x30, 0x80]),
      smallInteger(1),
      Buffer.from([0x31, 0x00]),
      sequence(objectIdentifier('1.2.840.113549.1.7.1')),
      Buffer.from([0xa0, 0x80]),
      certificate,
      eoc,
      Buffer.from([0x31, 0x00]),
      eoc,
      eoc,
      eoc,
    ]);
    expect(parseCertsOnly(ber)).to.deep.equal([certificate]);
  });

  it('fail garbage is not a certs-only PKCS#7', () => {
    expect(() => parseCertsOnly(Buffer.from('not pkcs7 at all'))).to.throw();
  });
});

describe('CertificateView: the fields est-ra reads, sliced from the DER', () => {
  const make = async (options: { serial: string; notAfter: Date; ca: boolean; keyCertSign: boolean }): Promise<x509.X509Certificate> => {
    const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
    return x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: options.serial,
      name: 'CN=view, O=Plant, 2.5.4.5=SN-1',
      notBefore: new Date('2020-01-02T03:04:05Z'),
      notAfter: options.notAfter,
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth, '1.3.6.1.5.5.7.3.28']),
        new x509.BasicConstraintsExtension(options.ca),
        new x509.KeyUsagesExtension(options.keyCertSign ? x509.KeyUsageFlags.keyCertSign : x509.KeyUsageFlags.digitalSignature),
      ],
    });
  };

  for (const [name, options] of [
    ['serial with the high bit set, UTCTime', { serial: '80a1b2c3', notAfter: new Date('2049-12-31T23:59:59Z'), ca: false, keyCertSign: false }],
    ['small serial, GeneralizedTime (2050 and later), a CA', { serial: '01', notAfter: new Date('2051-06-07T08:09:10Z'), ca: true, keyCertSign: true }],
  ] as const) {
    it(`ok ${name}: the same as @peculiar/x509 and node:crypto read`, async () => {
      const certificate = await make(options);
      const der = Buffer.from(certificate.rawData);
      const view = CertificateView.parse(der);
      const openssl = new OpenSslCertificate(der);
      expect(view.serialNumber).to.equal(certificate.serialNumber);
      expect(view.serialNumber).to.equal(openssl.serialNumber.toLowerCase());
      expect(view.subject).to.equal(certificate.subject);
      expect(view.issuer).to.equal(certificate.issuer);
      expect(view.notBefore.getTime()).to.equal(certificate.notBefore.getTime());
      expect(view.notAfter.getTime()).to.equal(certificate.notAfter.getTime());
      expect(view.subjectPublicKeyInfo.equals(Buffer.from(certificate.publicKey.rawData))).to.equal(true);
      expect(view.subjectDer.equals(Buffer.from(certificate.subjectName.toArrayBuffer()))).to.equal(true);
      expect(view.extendedKeyUsages()).to.deep.equal(['1.3.6.1.5.5.7.3.2', '1.3.6.1.5.5.7.3.28']);
      expect(view.isCa()).to.equal(options.ca);
      expect(view.keyUsage()).to.deep.equal({ keyCertSign: options.keyCertSign });
      expect(view.extension('2.5.29.31')).to.equal(undefined);
    });
  }

  it('fail bytes that are not a certificate', () => {
    expect(() => CertificateView.parse(Buffer.from('30030201', 'hex'))).to.throw();
    expect(() => CertificateView.parse(Buffer.from('not a certificate'))).to.throw();
  });
});

describe('readTime: the time forms certificates carry', () => {
  const read = (tag: number, text: string): string =>
    readTime(tlv(tag, Buffer.from(text, 'latin1')), readTlv(tlv(tag, Buffer.from(text, 'latin1')), 0)).toISOString();

  const cases: [string, number, string, string][] = [
    ['UTCTime as RFC 5280 asks', TAG.utcTime, '491231235959Z', '2049-12-31T23:59:59.000Z'],
    ['UTCTime in the last century', TAG.utcTime, '991231235959Z', '1999-12-31T23:59:59.000Z'],
    ['UTCTime without seconds', TAG.utcTime, '2001020304Z', '2020-01-02T03:04:00.000Z'],
    ['UTCTime with an offset', TAG.utcTime, '200102030405+0130', '2020-01-02T01:34:05.000Z'],
    ['GeneralizedTime as RFC 5280 asks', TAG.generalizedTime, '20510607080910Z', '2051-06-07T08:09:10.000Z'],
    ['GeneralizedTime with a fraction', TAG.generalizedTime, '20510607080910.25Z', '2051-06-07T08:09:10.250Z'],
  ];
  for (const [name, tag, text, iso] of cases) {
    it(`ok ${name}: ${text}`, () => expect(read(tag, text)).to.equal(iso));
  }

  it('fail text that is no time, or another tag', () => {
    expect(() => read(TAG.utcTime, '2001020304')).to.throw('bad time');
    expect(() => read(TAG.octetString, '491231235959Z')).to.throw('UTCTime or GeneralizedTime');
  });

  it('#9 - fail a GeneralizedTime without seconds (found by the differential test: a UTCTime string under the GeneralizedTime tag)', () => {
    expect(() => read(TAG.generalizedTime, '261201010318Z')).to.throw('bad time');
  });
});
