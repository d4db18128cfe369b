/**
 * The PostgreSQL schema, as migrations applied in order; schema_migrations
 * records each version once. The same tables and meanings as the SQLite
 * store's (sqlite-database.ts), in PostgreSQL's own types: timestamptz for
 * times, bytea for DER, jsonb for the principal and registered values, and a
 * `seq` column where SQLite's rowid breaks ties in an ordering.
 */
export const POSTGRES_MIGRATIONS: readonly string[] = [
  `CREATE TABLE requests (
     seq                bigserial NOT NULL UNIQUE,
     id                 text PRIMARY KEY,
     received_at        timestamptz NOT NULL,
     completed_at       timestamptz,
     profile            text NOT NULL,
     peer_address       text NOT NULL,
     principal          jsonb NOT NULL,
     operation          text NOT NULL,
     csr                bytea,
     csr_sha256         text,
     client_certificate bytea,
     state              text NOT NULL CHECK (state IN ('received', 'queued', 'pending', 'awaiting_approval', 'issued', 'refused')),
     status             integer,
     reason             text,
     attempts           integer NOT NULL DEFAULT 0,
     next_attempt_at    timestamptz,
     serial             text,
     subject            text,
     not_after          timestamptz,
     possibly_issued_twice_upstream boolean NOT NULL DEFAULT false,
     lease_owner        text,
     lease_expires_at   timestamptz
   );
   CREATE INDEX requests_received_at ON requests (received_at);
   CREATE INDEX requests_by_csr ON requests (profile, operation, csr_sha256);
   CREATE INDEX requests_waiting ON requests (state, next_attempt_at) WHERE state IN ('received', 'queued', 'pending');
   CREATE INDEX requests_completed ON requests (state, completed_at);
   CREATE TABLE certificates (
     serial      text PRIMARY KEY,
     request_id  text NOT NULL REFERENCES requests (id),
     profile     text NOT NULL,
     subject     text NOT NULL,
     not_before  timestamptz NOT NULL,
     not_after   timestamptz NOT NULL,
     der         bytea NOT NULL
   );
   CREATE INDEX certificates_subject ON certificates (subject);
   CREATE INDEX certificates_request ON certificates (request_id);
   CREATE INDEX certificates_not_after ON certificates (not_after);
   CREATE TABLE passcodes (
     id                text PRIMARY KEY,
     policy            text NOT NULL,
     username          text,
     hash              text NOT NULL UNIQUE,
     description       text,
     created_at        timestamptz NOT NULL,
     enabled           boolean NOT NULL DEFAULT true,
     max_uses          integer,
     uses              integer NOT NULL DEFAULT 0,
     expires_at        timestamptz,
     registered_values jsonb
   );
   CREATE TABLE cache (
     key        text PRIMARY KEY,
     value      bytea NOT NULL,
     updated_at timestamptz NOT NULL
   );
   CREATE TABLE refusal_counts (
     seq         bigserial NOT NULL UNIQUE,
     address     text NOT NULL,
     profile     text NOT NULL,
     operation   text NOT NULL,
     code        text NOT NULL,
     hour        text NOT NULL,
     status      integer NOT NULL,
     last_reason text NOT NULL,
     count       bigint NOT NULL,
     first_at    timestamptz NOT NULL,
     last_at     timestamptz NOT NULL,
     PRIMARY KEY (address, profile, operation, code, hour)
   );
   CREATE TABLE passcode_events (
     seq         bigserial PRIMARY KEY,
     at          timestamptz NOT NULL,
     passcode_id text NOT NULL,
     policy      text NOT NULL,
     event       text NOT NULL CHECK (event IN ('created', 'disabled', 'enabled', 'rotated'))
   );
   CREATE INDEX passcode_events_at ON passcode_events (at);
   CREATE TABLE approvals (
     request_id   text PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
     state        text NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'expired')),
     requested_at timestamptz NOT NULL,
     expires_at   timestamptz NOT NULL,
     decided_at   timestamptz,
     decided_by   text,
     reason       text
   );
   CREATE INDEX approvals_pending ON approvals (expires_at) WHERE state = 'pending';
   CREATE INDEX approvals_decided_at ON approvals (decided_at);`,
  // The upstream's health, one row per failing profile, shared by every node (issue #13): one probe serves the cluster.
  `CREATE TABLE upstream_health (
     profile          text PRIMARY KEY,
     failures         integer NOT NULL,
     next_probe_at    timestamptz NOT NULL,
     probing_node     text,
     probe_started_at timestamptz,
     probe_expires_at timestamptz
   );`,
  `CREATE TABLE nodes (
     name         text PRIMARY KEY,
     instance     text NOT NULL,
     host         text NOT NULL,
     machine_id   text,
     pid          integer NOT NULL,
     version      text NOT NULL,
     started_at   timestamptz NOT NULL,
     last_seen_at timestamptz NOT NULL,
     stopped_at   timestamptz
   );`,
];
