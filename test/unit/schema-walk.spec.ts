import { expect } from 'chai';
import { parse } from 'yaml';
import { configSchema, filePath, secret } from '../../src/config/schema.js';
import { keysAt, nearestName, valuesMarked } from '../../src/config/schema-walk.js';
import { sampleConfig } from '../../src/config/sample.js';

describe('reading the configuration schema (check-config)', () => {
  it('ok the keys valid at a place, through records, sections and defaults', () => {
    expect(keysAt(configSchema, ['profiles', 'any-name'])).to.include.members(['allowed_ip_addresses', 'renewal_settings', 'upstream']);
    expect(keysAt(configSchema, ['authentication_policies', 'p', 'revocation'])).to.include.members(['mode', 'crl_files']);
    expect(keysAt(configSchema, ['profiles', 'p', 'est', 'ra_renewal'])).to.have.members(['enabled', 'renew_before', 'retry_every', 'new_key']);
    expect(keysAt(configSchema, ['profiles'])).to.deep.equal([]); // any profile name goes
  });

  const near: [string, string[], string | undefined][] = [
    ['allowed_ip_adresses', ['allowed_ip_addresses', 'allowed_key_types'], 'allowed_ip_addresses'],
    ['renewal_setting', ['renewal_settings', 'validity'], 'renewal_settings'],
    ['alowed_key_types', ['allowed_key_types', 'allowed_ip_addresses'], 'allowed_key_types'],
    ['vlaidity', ['validity', 'labels'], 'validity'],
    ['foo', ['profiles', 'listen', 'tls'], undefined],
    ['certificate_profile', ['csrattrs', 'subject', 'san'], undefined],
  ];
  for (const [typed, known, meant] of near) {
    it(`ok ${typed} → ${meant ?? 'no suggestion'}`, () => expect(nearestName(typed, known)).to.equal(meant));
  }

  it('ok every file path and secret of a configuration is found by the schema, valid or not', () => {
    const data = parse(sampleConfig({ port: 8443, host: '127.0.0.1' })) as { profiles: Record<string, Record<string, unknown>> };
    data.profiles.demo!.est = { url: 42, ra_pkcs12: 'ra.p12', ra_pkcs12_passphrase: { env: 'P12' }, trust_anchors: ['a.pem', 'b.pem'] };
    const files = valuesMarked(configSchema, data, [filePath]).map((v) => v.path.join('.'));
    expect(files).to.have.members([
      'tls.certificate',
      'tls.key',
      'store.sqlite.path',
      'profiles.demo.local_ca.certificate',
      'profiles.demo.local_ca.key',
      'profiles.demo.local_ca.chain.0',
      'profiles.demo.est.ra_pkcs12',
      'profiles.demo.est.trust_anchors.0',
      'profiles.demo.est.trust_anchors.1',
    ]);
    expect(valuesMarked(configSchema, data, [secret]).map((v) => v.path.join('.'))).to.deep.equal(['profiles.demo.est.ra_pkcs12_passphrase']);
  });
});
