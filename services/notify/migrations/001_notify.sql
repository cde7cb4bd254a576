-- Notifications: who the users are (from user.registered), the in-app notifications
-- (one per event, so the event id is unique), and their mail deliveries with every
-- attempt recorded.
CREATE TABLE users (
    user_id    TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
);

CREATE TABLE notifications (
    id         TEXT PRIMARY KEY,                 -- ntf_<ulid>: newest first = id DESC
    user_id    TEXT NOT NULL,
    event_id   TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    read       INTEGER NOT NULL DEFAULT 0 CHECK (read IN (0, 1)),
    created_at TEXT NOT NULL
);
CREATE INDEX notifications_by_user ON notifications(user_id, id);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    notification_id TEXT NOT NULL UNIQUE REFERENCES notifications(id),
    user_id         TEXT NOT NULL,
    recipient       TEXT,                         -- NULL until the user's address is known
    status          TEXT NOT NULL CHECK (status IN ('pending', 'no_address', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    sent_at         TEXT
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_ms) WHERE status = 'pending';
CREATE INDEX deliveries_waiting ON deliveries(user_id) WHERE status = 'no_address';

CREATE TABLE delivery_attempts (
    id          INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
    at          TEXT NOT NULL,
    ok          INTEGER NOT NULL CHECK (ok IN (0, 1)),
    error       TEXT
);
