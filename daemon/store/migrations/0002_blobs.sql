-- Named blobs every replica of a party shares (store.Blobs): the HSM-sealed
-- HPKE import keys. version is bumped by every compare-and-swap write.
CREATE TABLE quorumd_blobs (
    name       text COLLATE "C" PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 128),
    version    bigint      NOT NULL CHECK (version > 0),
    value      bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
