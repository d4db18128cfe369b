/**
 * The commented configuration `est-ra init` writes: the embedded default
 * (local CA, one demo profile, SQLite), every setting shown with what it does.
 */
export interface SampleConfigOptions {
  readonly port: number;
  readonly host: string;
  /** The authentication policy and profile names; `demo` when not given (est-ra init always gives them). */
  readonly policyName?: string;
  readonly profileName?: string;
  /** local_ca.chain: the CA certificates above the issuing CA, root last, relative to the config file. */
  readonly chain?: readonly string[];
}

export function sampleConfig(options: SampleConfigOptions): string {
  const policy = options.policyName ?? 'demo';
  const profile = options.profileName ?? 'demo';
  const chain = options.chain ?? ['pki/root-ca.crt'];
  // The demo keeps its DigiCert-shaped example labels (the tests and the README use them); others show them commented.
  const exampleLabels = [
    'devicetrustmanager/IOT_demo/device-group/line-1',
    "IOT_demo_line-1         # one-segment alias: Bouncy Castle's EST client accepts no '/' in a label",
  ]
    .map((label) => `${profile === 'demo' ? '' : '# '}      - ${label}`)
    .join('\n');
  return `# est-ra configuration (written by est-ra init). Paths are relative to this file.
# Check it with: est-ra check-config --config <this file>

listen:
  host: ${options.host}          # 0.0.0.0 to serve the plant network
  port: ${options.port}
  # proxy_protocol: { from: [10.0.0.5] }   # behind HAProxy send-proxy-v2: the balancers' addresses (docs/cluster.md)

tls:
  certificate: pki/server.crt   # server certificate, then its chain (PEM)
  key: pki/server.key
  min_version: TLSv1.2

store:
  sqlite:
    path: est-ra.db             # WAL, synchronous writes: every request is durable
  retention_days: 90            # refused requests, counted refusals and finished CSR bodies are pruned after this

# The time zone of dates given to the CLI (passcodes create --expires 2027-03-31 ends at the end of that
# day there). Default: this machine's.
# time_zone: Europe/Berlin

log:
  level: info                   # error | warn | info | debug
  format: auto                  # json for journald, text on a terminal, auto picks

limits:
  max_body_bytes: 65536         # larger requests get 413
  headers_timeout_ms: 10000     # time to send request headers
  request_timeout_ms: 30000     # time to send the whole request
  keep_alive_timeout_ms: 5000
  max_connections: 1024
  max_connections_per_address: 64   # one scanner or broken device cannot hold them all
  connections_reserve: 64       # the last connections under max_connections: only for addresses holding none
  handshake_timeout_ms: 5000    # time to finish the TLS handshake
  refusals_per_minute_per_address: 120   # past this, 429 + Retry-After until the minute is over
  refusals_per_minute_per_passcode: 30   # the same for one passcode (a used-up one tried again and again)
  concurrent_key_generations: 2   # /serverkeygen keys generated at once; 8 per one may wait, then 503
  refused_answer_delay_ms: 1000          # each 429 to an address past its budget is held this long (a flood gets 64 a second)

# Prometheus /metrics and /healthz over plain HTTP: keep it on loopback or a management network.
# ops:
#   listen: { host: 127.0.0.1, port: 9090 }

# Who may enroll: passcodes belong to an authentication policy
# (create them with: est-ra passcodes create --config <file> --policy ${policy}).
authentication_policies:
  ${policy}:
    enable_username_for_passcode: false   # true: the Basic username must match the passcode's
    authentication_cas: []                # bootstrap / manufacturer CAs (PEM) for client_certificate
    pinned_certificates: []               # individual client certificates accepted as they are
    downstream_ra_cas: []                 # CAs of RAs in front of est-ra: their id-kp-cmcRA certificates enroll for devices
    revocation:                           # of bootstrap and renewal certificates
      mode: off                           # off | soft_fail (log, count, allow when unknown) | hard_fail (403 when unknown)
      ocsp: true                          # the responder in the certificate's AIA, or ocsp_responder_url
      use_crl_distribution_points: true   # fetch the CRL the certificate names (HTTP), cached until nextUpdate
      crl_files: []                       # CRLs kept by the admin (PEM or DER), re-read when they change

profiles:
  ${profile}:
    default: true               # also serves the bare /.well-known/est/ path
    labels:                     # /.well-known/est/<label>/simpleenroll selects this profile
      - ${profile}
${exampleLabels}
    authentication_policy: ${policy}
    upstream: local-ca          # the embedded issuing CA below; est forwards to an RFC 7030 server:
    # upstream: est
    # est:
    #   url: https://clientauth.demo.one.digicert.com/.well-known/est/devicetrustmanager/IOT_<id>/device-group/<group>
    #   ra_certificate: pki/ra.crt          # est-ra's own RA identity (or ra_pkcs12 + ra_pkcs12_passphrase: { file | env })
    #   ra_key: pki/ra.key
    #   trust_anchors: [pki/upstream-root.crt]
    #   passcode: { env: EST_RA_UPSTREAM_PASSCODE }   # when the upstream also wants Basic; username: optional
    #   timeout_ms: 30000
    #   reenroll_operation: simplereenroll  # or simpleenroll, when the upstream cannot see the device's certificate
    #   cacerts_refresh_s: 3600
    #   ra_renewal: { renew_before: 30d, retry_every: 1h, new_key: true }   # est-ra renews ra_certificate + ra_key itself
    # csrattrs_source: profile              # profile | upstream | merged
    # est_cacerts_include_full_tls_chain: false
    # base64_framing: auto      # auto: one line without a User-Agent (strongSwan pki), else 64-column lines | wrapped | single_line
    local_ca:
      certificate: pki/issuing-ca.crt
      key: pki/issuing-ca.key
      chain: [${chain.join(', ')}]  # served by /cacerts after the issuing CA, root last
    allowed_key_types: [rsa_2048, rsa_3072, rsa_4096, p_256, p_384, p_521, ed_25519]
    # also: ed_448, rsa_1024 (weak: check-config warns), MLDSA-44 | MLDSA-65 | MLDSA-87, SLHDSA-SHA2-128s .. SLHDSA-SHAKE-256f
    # key_generation_option: client_side   # client_side | server_side (est-ra makes the key: /serverkeygen only) | either
    rsa_min_public_exponent: 65537   # RSA keys: odd public exponent at least this (e = 1 proves no private key)
    validity:
      duration_value: 1
      duration_unit: years      # hours | days | months | years
    key_usage:
      rsa: [digital_signature, key_encipherment]
      ecdsa: [digital_signature, key_agreement]
      eddsa: [digital_signature]
    extended_key_usage: [client_authentication]
    # What the certificate may say (DigiCert's subject.* and san.*). Each entry: enabled / include,
    # sources tried in order (csr: the device's value, checked against patterns; fixed_value: value;
    # user_supplied: values registered with the passcode (passcodes create --value common_name=...)
    # or the bootstrap certificate's serialNumber / CN), patterns (globs: * is one DNS label or word;
    # /regular expressions/; for ip_address any allowed_ip_addresses notation). Anything else a CSR
    # asks for is refused with the rule named: 403 subject.common_name www.bank.example does not match ...
    subject:
      common_name: { optional: false, sources: [csr], patterns: ['/[A-Za-z0-9][A-Za-z0-9_-]{0,63}/'] }  # a device name, no dots
      organization_name: { enabled: true, sources: [csr] }
      organization_unit: { enabled: true, sources: [csr] }
      # organization_name: { sources: [fixed_value], value: ACME Plant 7 }
      street_address: { enabled: false }
      postal_code: { enabled: false }
      locality: { enabled: false }
      state: { enabled: false }
      country: { enabled: false }
      email: { enabled: false }
      serial_number: { enabled: true, sources: [csr] }
    san:
      dns_name: { include: optional, sources: [csr], patterns: ['*.local', '*.*.local'], auto_include_cn: no }
      ip_address: { include: optional, sources: [csr], patterns: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 'fc00::/7'] }
      email: { include: 'no' }
      user_principal_name: { include: 'no' }
      uri: { include: 'no' }
    allow_sha1_proof_of_possession: false
    enroll_authentication:      # simpleenroll: passcode and/or a client certificate of the policy
      methods: [passcode]       # passcode | client_certificate
      require_all: false        # true: both at once
    channel_binding: false      # true: the CSR's challengePassword carries tls-unique / tls-exporter (RFC 7030 §3.5)
    renewal_settings:           # simplereenroll, by DigiCert's names
      renew_valid_cert: anytime   # anytime | never | N (from N days before expiry)
      renew_expired_cert: never   # anytime | never | N (up to N days after expiry)
      renew_revoked_cert: false   # true: a revoked certificate may still be renewed
      renewal_key_pair: optional  # new_key_required | optional | same_key_only
    require_approval_for_enroll: false   # true: enrollments wait for an administrator (est-ra approvals); the device gets 202
    require_approval_for_renew: false    # the same for renewals (simplereenroll)
    approval_retry_after_s: 60           # the Retry-After a device waiting for approval is told (libest sleeps all of it)
    approval_expires_after: 7d           # not decided within this: expired, the device's retry gets 403 approval expired
    # usage_restrictions:       # enrollment only inside these dates and hours
    #   time_zone: Europe/Berlin
    #   operational_hours: { monday: ["06:00-22:00"], tuesday: ["06:00-22:00"] }   # days not listed are closed
    #   operational_dates: { valid_from: 2026-01-01, valid_to: 2027-12-31 }
    # allowed_ip_addresses: [10.1.0.0/16, 10.2.0.5-10.2.0.50, 10.3.*.*, 143.11.129.0/255]   # empty: any
    # GET /csrattrs asks for what this profile requires: its key types, required subject attributes and SANs,
    # challengePassword with channel_binding, the signature algorithms. csrattrs: may narrow the key type to one
    # of allowed_key_types and add OIDs; check-config refuses one that contradicts the profile.
    # csrattrs: { key_type: p_256, oids: [2.5.4.5] }
    # csrattrs_form: plain      # plain | template (adds the RFC 9908 CertificationRequestInfoTemplate)
    # fullcmc: off              # off (501) | passthrough (upstream: est only; relays /fullcmc to the upstream)
`;
}
