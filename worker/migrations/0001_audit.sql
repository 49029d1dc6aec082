-- The audit trail, admin-assigned idents and the gateway fleet (docs/audit.md).
-- Applied by `wrangler d1 migrations apply AUDIT` on Workers and by the Node
-- worker and the embedded worker when they open their SQLite file (--audit FILE);
-- both record applied migrations in the table d1_migrations.
-- Times are milliseconds since the Unix epoch (UTC).

-- One row per decision.
CREATE TABLE audit_records (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  gateway TEXT NOT NULL,
  -- The key that signed the request (NULL when nothing was signed: the embedded worker).
  signing_key TEXT,
  request_id TEXT NOT NULL,
  server_port INTEGER NOT NULL,
  client_port INTEGER NOT NULL,
  local_address TEXT NOT NULL,
  local_port INTEGER NOT NULL,
  remote_address TEXT NOT NULL,
  remote_port INTEGER NOT NULL,
  owner_uid INTEGER,
  owner_name TEXT,
  claim_user TEXT,
  claim_ident TEXT,
  -- 'USERID' with opsys, charset and user_id, or 'ERROR' with error.
  answer_type TEXT NOT NULL CHECK (answer_type IN ('USERID', 'ERROR')),
  opsys TEXT,
  charset TEXT,
  user_id TEXT,
  error TEXT,
  rule TEXT NOT NULL,
  policy_version TEXT NOT NULL
);
-- Newest first, and the two filters an abuse desk starts from (the answered user id,
-- the querier). Every index costs each insert; the other filters read the time range
-- (docs/audit.md: give them from/to).
CREATE INDEX audit_records_at ON audit_records (at);
CREATE INDEX audit_records_user_id ON audit_records (user_id, at);
CREATE INDEX audit_records_remote_address ON audit_records (remote_address, at);

-- Idents the admin assigned. An ident is unique across the fleet (the primary
-- key); a scope, (gateway, owner_uid) or (gateway, claim_user), has at most one.
CREATE TABLE assignments (
  ident TEXT PRIMARY KEY,
  gateway TEXT NOT NULL,
  owner_uid INTEGER,
  claim_user TEXT,
  created_at INTEGER NOT NULL,
  CHECK ((owner_uid IS NULL) <> (claim_user IS NULL))
);
CREATE UNIQUE INDEX assignments_owner ON assignments (gateway, owner_uid) WHERE owner_uid IS NOT NULL;
CREATE UNIQUE INDEX assignments_claim ON assignments (gateway, claim_user) WHERE claim_user IS NOT NULL;

-- Every gateway the worker has heard from.
CREATE TABLE gateways (
  name TEXT PRIMARY KEY,
  signing_key TEXT,
  version TEXT,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  queries INTEGER NOT NULL DEFAULT 0
);
