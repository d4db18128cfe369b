import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editProfile } from '../helpers/config.js';
import { curl } from '../helpers/clients.js';
import { mustRun } from '../helpers/run.js';

const TEMPLATE = '1.2.840.113549.1.9.16.2.61';

/**
 * /csrattrs over HTTP for a profile with fixed subject values, a required
 * DNS SAN, channel binding and `csrattrs_form: template`: the admin's path
 * (curl, base64 -d, openssl asn1parse) and Bouncy Castle's EST client read it.
 */
describe('csrattrs from the profile, template form (RFC 9908)', function () {
  this.timeout(60_000);
  let ra: TestEstRa;

  before(async () => {
    ra = await startEstRa({
      editConfig: (yaml) =>
        editProfile(yaml, 'demo', (profile) => {
          profile.csrattrs_form = 'template';
          profile.channel_binding = true;
          profile.allowed_key_types = ['p_384'];
          profile.labels = ['demo', 'line-1'];
          const subject = profile.subject as Record<string, unknown>;
          subject.organization_name = { sources: ['fixed_value'], value: 'ACME Plant 7' };
          (profile.san as Record<string, unknown>).dns_name = { include: 'required', sources: ['csr'], patterns: ['*.local'] };
        }),
    });
  });
  after(async () => ra.close());

  it('ok curl + openssl asn1parse: the plain list, then the template with the fixed values', async () => {
    const answer = await curl(ra, '/csrattrs', []);
    expect(answer.status).to.equal(200);
    expect(answer.headers).to.match(/\r\nContent-Type: application\/csrattrs\r\n/);
    const text = await mustRun('openssl', ['asn1parse', '-inform', 'DER'], { input: Buffer.from(answer.body, 'base64') });
    const plain = text.slice(0, text.indexOf(`:${TEMPLATE}`));
    const template = text.slice(text.indexOf(`:${TEMPLATE}`));
    expect(plain).to.match(
      /:challengePassword\n[^]*:id-ecPublicKey\n.*SET.*\n.*:secp384r1\n[^]*:commonName\n[^]*:X509v3 Subject Alternative Name\n.*:ecdsa-with-SHA384\n/,
    );
    expect(template).to.match(/:organizationName\n.*PRINTABLESTRING +:ACME Plant 7\n/);
    expect(template).to.match(/:commonName\n.*cont \[ 0 \] *\n.*SEQUENCE.*\n.*:id-ecPublicKey\n.*:secp384r1\n/);
    expect(template).to.match(/:1\.2\.840\.113549\.1\.9\.16\.2\.62\n[^]*:X509v3 Subject Alternative Name\n.*OCTET STRING +\[HEX DUMP\]:30028200\n/);
  });

  it("ok Bouncy Castle's EST client reads the template form (it ignores what it does not know)", async () => {
    const classpath = ['bcprov', 'bcpkix', 'bcutil'].map((jar) => `/usr/share/java/${jar}.jar`).join(':');
    const classes = join(ra.dir, 'java');
    await mustRun('javac', ['-d', classes, '-cp', classpath, fileURLToPath(new URL('../../../test/java/BcEstClient.java', import.meta.url))]);
    const said = await mustRun('java', ['-cp', `${classes}:${classpath}`, 'BcEstClient', `127.0.0.1:${ra.port}`, 'line-1', ra.rootCaFile, 'csrattrs']);
    const [word, ...oids] = said.trim().split(' ');
    expect(word).to.equal('csrattrs');
    expect(oids).to.include.members(['1.2.840.113549.1.9.7', '1.2.840.10045.2.1', '2.5.4.3', '2.5.29.17', '1.2.840.10045.4.3.3', TEMPLATE]);
  });
});
