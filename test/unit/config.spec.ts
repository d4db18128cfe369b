import { expect } from 'chai';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { sampleConfig } from '../../src/config/sample.js';

const SAMPLE = sampleConfig({ port: 8443, host: '127.0.0.1' });

function problemsOf(text: string): readonly string[] {
  try {
    parseConfig(text, '/etc/est-ra/config.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('configuration validation', () => {
  it('ok the sample init writes is valid, resolved and frozen', () => {
    const config = parseConfig(SAMPLE, '/etc/est-ra/config.yaml');
    expect(config.profiles.demo?.local_ca?.certificate).to.equal('/etc/est-ra/pki/issuing-ca.crt');
    expect(config.store.sqlite?.path).to.equal('/etc/est-ra/est-ra.db');
    expect(Object.isFrozen(config.profiles.demo?.allowed_key_types)).to.equal(true);
  });

  const cases: [string, (s: string) => string, string][] = [
    ['zero validity', (s) => s.replace('duration_value: 1', 'duration_value: 0'), 'profiles.demo.validity.duration_value: must be a positive integer'],
    ['fractional validity', (s) => s.replace('duration_value: 1', 'duration_value: 1.5'), 'profiles.demo.validity.duration_value: must be a positive integer'],
    [
      'unknown unit',
      (s) => s.replace('duration_unit: years', 'duration_unit: weeks'),
      'profiles.demo.validity.duration_unit: must be hours, days, months or years',
    ],
    [
      'unknown key type',
      (s) => s.replace('allowed_key_types: [rsa_2048,', 'allowed_key_types: [rsa_512,'),
      'profiles.demo.allowed_key_types.0: must be one of rsa_1024, rsa_2048, rsa_3072, rsa_4096, p_256, p_384, p_521, ed_25519, ed_448, MLDSA-44, MLDSA-65, MLDSA-87, SLHDSA-SHA2-128s, SLHDSA-SHA2-128f, SLHDSA-SHA2-192s, SLHDSA-SHA2-192f, SLHDSA-SHA2-256s, SLHDSA-SHA2-256f, SLHDSA-SHAKE-128s, SLHDSA-SHAKE-128f, SLHDSA-SHAKE-192s, SLHDSA-SHAKE-192f, SLHDSA-SHAKE-256s, SLHDSA-SHAKE-256f',
    ],
    ['misspelt setting', (s) => s.replace('allowed_key_types:', 'allowed_keytypes:'), 'profiles.demo.allowed_keytypes: unknown setting'],
    [
      'missing policy',
      (s) => s.replace('authentication_policy: demo', 'authentication_policy: line-9'),
      "profiles.demo.authentication_policy: no authentication policy named 'line-9'",
    ],
    ['bad label', (s) => s.replace('- demo\n', '- ../etc\n'), 'profiles.demo.labels.0: must not contain . or .. segments'],
    ['bad port', (s) => s.replace('port: 8443', 'port: 99999'), 'listen.port: must be a port number'],
    [
      'both stores',
      (s) => s.replace('  retention_days: 90', '  postgres: { url: "postgres://est_ra@db.plant:5432/est_ra" }\n  retention_days: 90'),
      'store: must give exactly one of sqlite or postgres',
    ],
    [
      'a password in the PostgreSQL URL',
      (s) => s.replace(/ {2}sqlite:\n.*\n/, '  postgres: { url: "postgres://est_ra:s3cret@db.plant/est_ra" }\n'),
      'store.postgres.url: must be postgres://user@host:port/database, without a password (use password: { file | env })',
    ],
    [
      'PostgreSQL by url and host at once',
      (s) => s.replace(/ {2}sqlite:\n.*\n/, '  postgres: { url: "postgres://est_ra@db.plant/est_ra", host: db.plant }\n'),
      'store.postgres: must give exactly one of url or host',
    ],
    ['missing tls', (s) => s.replace(/^tls:\n( {2}.*\n)+/m, ''), 'tls: is required'],
    ['YAML syntax', (s) => `${s}\n  : : [`, 'YAML:'],
  ];
  for (const [name, edit, problem] of cases) {
    it(`fail ${name}: names the field`, () => {
      const problems = problemsOf(edit(SAMPLE));
      expect(
        problems.some((p) => p.startsWith(problem)),
        problems.join('\n'),
      ).to.equal(true);
    });
  }

  it('fail reports every problem at once', () => {
    const problems = problemsOf(
      SAMPLE.replace('duration_value: 1', 'duration_value: -1').replace('port: 8443', 'port: "x"').replace('format: auto', 'format: xml'),
    );
    expect(problems).to.have.length(3);
  });
});

describe('configuration sections', () => {
  it('ok an empty section means its defaults', () => {
    const config = parseConfig(SAMPLE.replace(/^limits:\n( {2}.*\n)+/m, 'limits:\n'), '/etc/est-ra/config.yaml');
    expect(config.limits.max_body_bytes).to.equal(65536);
  });

  it('fail a section given as text says it must be a mapping', () => {
    expect(problemsOf(SAMPLE.replace(/^limits:\n( {2}.*\n)+/m, 'limits: lots\n'))).to.include('limits: must be a mapping of settings (key: value lines)');
  });
});

describe('allowed_ip_addresses in the configuration', () => {
  it('fail a bad entry is a config error that names it', () => {
    const text = SAMPLE.replace('    allowed_key_types:', "    allowed_ip_addresses: ['10.0.0.0/8', '10.0.0.5/20']\n    allowed_key_types:");
    expect(problemsOf(text)).to.deep.equal([
      "profiles.demo.allowed_ip_addresses.1: '10.0.0.5/20': host bits set: did you mean 10.0.0.0/20 or the range 10.0.0.5-10.0.0.20?",
    ]);
  });
});

describe('listen.proxy_protocol in the configuration', () => {
  const withBalancers = (from: string): string => SAMPLE.replace('  port: 8443', `  port: 8443\n  proxy_protocol: { from: ${from} }`);

  it('ok balancers in the allowlist notations, with the header timeout defaulted', () => {
    const config = parseConfig(withBalancers("['10.0.0.5', '10.0.1.0/29']"), '/etc/est-ra/config.yaml');
    expect(config.listen.proxy_protocol).to.deep.equal({ from: ['10.0.0.5', '10.0.1.0/29'], header_timeout_ms: 3000 });
  });

  it('fail a bad balancer entry or an empty list names the field', () => {
    expect(problemsOf(withBalancers("['10.0.0.5/20']"))).to.deep.equal([
      "listen.proxy_protocol.from.0: '10.0.0.5/20': host bits set: did you mean 10.0.0.0/20 or the range 10.0.0.5-10.0.0.20?",
    ]);
    expect(problemsOf(withBalancers('[]'))).to.deep.equal(['listen.proxy_protocol.from: name the load balancers that send the header']);
  });
});

describe('renewal settings and usage restrictions in the configuration', () => {
  const withProfileLines = (lines: string): string => SAMPLE.replace('    allowed_key_types:', `${lines}\n    allowed_key_types:`);
  it('fail renewal settings name the field', () => {
    const text = SAMPLE.replace('renew_valid_cert: anytime', 'renew_valid_cert: soon').replace('renewal_key_pair: optional', 'renewal_key_pair: new');
    expect(problemsOf(text)).to.deep.equal([
      'profiles.demo.renewal_settings.renew_valid_cert: must be anytime, never or a number of days before expiry',
      'profiles.demo.renewal_settings.renewal_key_pair: must be new_key_required, optional or same_key_only',
    ]);
  });

  const cases: [string, string, string][] = [
    [
      'time zone',
      '    usage_restrictions: { time_zone: Mars/Olympus }',
      'profiles.demo.usage_restrictions.time_zone: must be an IANA time zone such as Europe/Berlin',
    ],
    [
      'window',
      "    usage_restrictions: { time_zone: UTC, operational_hours: { monday: ['22:00-06:00'] } }",
      'profiles.demo.usage_restrictions.operational_hours.monday.0: must be a window such as 06:00-22:00',
    ],
    [
      'weekday',
      "    usage_restrictions: { time_zone: UTC, operational_hours: { mon: ['06:00-22:00'] } }",
      'profiles.demo.usage_restrictions.operational_hours.mon: unknown setting',
    ],
  ];
  for (const [name, lines, problem] of cases) {
    it(`fail ${name}: names the field`, () => {
      expect(problemsOf(withProfileLines(lines))).to.deep.equal([problem]);
    });
  }
});
