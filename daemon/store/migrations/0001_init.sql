-- quorumd key records, one row per key_id ever used.
-- record holds the same versioned JSON encoding as the bbolt store (sealed
-- blobs base64 in it, never plaintext); owner and state are copies of the
-- record's fields for indexing, checked against it on every read.
CREATE TABLE quorumd_keys (
    key_id     text COLLATE "C" PRIMARY KEY CHECK (length(key_id) BETWEEN 1 AND 128),
    owner      text COLLATE "C" NOT NULL CHECK (length(owner) BETWEEN 1 AND 128),
    state      text        NOT NULL,
    record     bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Live keys by owner, in key_id order (ListByOwner, CountByOwner).
CREATE INDEX quorumd_keys_live_by_owner ON quorumd_keys (owner, key_id) WHERE state <> 'deleted';
