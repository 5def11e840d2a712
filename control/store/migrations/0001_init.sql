-- The control plane's first schema (docs/control.md, "Model"). One text for SQLite and
-- PostgreSQL: {{id}} becomes each one's auto-assigned key, everything else is common SQL.
-- Times are Unix seconds (BIGINT); booleans are INTEGER 0/1; JSON documents are TEXT.

CREATE TABLE storage_groups (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE storage_nodes (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    path TEXT NOT NULL,
    storage_group_id BIGINT REFERENCES storage_groups (id) ON DELETE SET NULL,
    master INTEGER NOT NULL DEFAULT 0 CHECK (master IN (0, 1)),
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE images (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    size_bytes BIGINT NOT NULL DEFAULT 0,
    disks TEXT NOT NULL DEFAULT '[]',
    protected INTEGER NOT NULL DEFAULT 0 CHECK (protected IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE image_storage_nodes (
    image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    storage_node_id BIGINT NOT NULL REFERENCES storage_nodes (id) ON DELETE CASCADE,
    PRIMARY KEY (image_id, storage_node_id)
);
CREATE INDEX image_storage_nodes_node ON image_storage_nodes (storage_node_id);

CREATE TABLE hosts (
    id {{id}},
    mac TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    image_id BIGINT REFERENCES images (id) ON DELETE SET NULL,
    inventory TEXT NOT NULL DEFAULT '{}',
    last_seen_at BIGINT,
    pending INTEGER NOT NULL DEFAULT 0 CHECK (pending IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX hosts_image ON hosts (image_id);

CREATE TABLE host_groups (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE host_group_members (
    group_id BIGINT NOT NULL REFERENCES host_groups (id) ON DELETE CASCADE,
    host_id BIGINT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, host_id)
);
CREATE INDEX host_group_members_host ON host_group_members (host_id);

CREATE TABLE users (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    id {{id}},
    name TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_sha256 TEXT NOT NULL UNIQUE,
    expires_at BIGINT,
    last_used_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE sessions (
    id {{id}},
    image_id BIGINT NOT NULL REFERENCES images (id),
    state TEXT NOT NULL CHECK (state IN ('waiting', 'running', 'complete', 'failed', 'cancelled')),
    mcast_group TEXT NOT NULL DEFAULT '',
    port INTEGER NOT NULL DEFAULT 0,
    receivers_min INTEGER NOT NULL DEFAULT 1,
    wait_max_s INTEGER NOT NULL DEFAULT 600,
    rate_bps BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT,
    finished_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX sessions_state ON sessions (state);

CREATE TABLE tasks (
    id {{id}},
    kind TEXT NOT NULL,
    host_id BIGINT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    image_id BIGINT REFERENCES images (id),
    state TEXT NOT NULL CHECK (state IN ('queued', 'active', 'in_progress', 'complete', 'failed', 'cancelled')),
    percent DOUBLE PRECISION NOT NULL DEFAULT 0,
    bytes_done BIGINT NOT NULL DEFAULT 0,
    bytes_total BIGINT NOT NULL DEFAULT 0,
    rate_bytes_per_s BIGINT NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    session_id BIGINT REFERENCES sessions (id) ON DELETE SET NULL,
    shutdown TEXT NOT NULL DEFAULT 'reboot',
    wol INTEGER NOT NULL DEFAULT 0 CHECK (wol IN (0, 1)),
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    key_sha256 TEXT UNIQUE,
    started_at BIGINT,
    finished_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- FOG's rule, kept by the database itself: at most one task per host that is not final.
CREATE UNIQUE INDEX tasks_one_open_per_host ON tasks (host_id)
    WHERE state IN ('queued', 'active', 'in_progress');
CREATE INDEX tasks_host ON tasks (host_id);
CREATE INDEX tasks_state ON tasks (state);
CREATE INDEX tasks_session ON tasks (session_id);
CREATE INDEX tasks_image ON tasks (image_id);

CREATE TABLE task_events (
    id {{id}},
    task_id BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX task_events_task ON task_events (task_id);

CREATE TABLE schedules (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('once', 'cron')),
    at BIGINT,
    cron TEXT NOT NULL DEFAULT '',
    task_kind TEXT NOT NULL,
    task_image_id BIGINT REFERENCES images (id),
    task_shutdown TEXT NOT NULL DEFAULT 'reboot',
    task_wol INTEGER NOT NULL DEFAULT 0 CHECK (task_wol IN (0, 1)),
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    next_run_at BIGINT,
    last_run_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX schedules_next_run ON schedules (next_run_at);

CREATE TABLE schedule_hosts (
    schedule_id BIGINT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    host_id BIGINT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    PRIMARY KEY (schedule_id, host_id)
);
CREATE INDEX schedule_hosts_host ON schedule_hosts (host_id);

CREATE TABLE schedule_groups (
    schedule_id BIGINT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES host_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (schedule_id, group_id)
);
CREATE INDEX schedule_groups_group ON schedule_groups (group_id);
