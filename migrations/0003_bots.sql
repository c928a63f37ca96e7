-- Bots, their published versions and API keys, and the conversations people have with them.
-- A bot is edited as a draft; publishing freezes a copy of the draft as the next version,
-- which is what the public channels (published page, API keys) answer with.

-- A bot: a persona answering from some knowledge bases.
CREATE TABLE bot (
    bot_id            TEXT PRIMARY KEY,               -- UUID
    name              TEXT NOT NULL UNIQUE,           -- mirrors draft_json.name
    draft_json        TEXT NOT NULL,                  -- store::bots::BotSettings being edited
    published_version INTEGER,                        -- bot_version.version in force, NULL until published
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- A published, immutable copy of a bot's settings. Versions count from 1 per bot.
CREATE TABLE bot_version (
    bot_id        TEXT NOT NULL REFERENCES bot (bot_id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    settings_json TEXT NOT NULL,                      -- BotSettings as published
    published_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (bot_id, version)
);

-- An API key of a bot. Only the sha256 of the key is kept; the key itself is shown once.
CREATE TABLE bot_key (
    key_id       TEXT PRIMARY KEY,                    -- UUID
    bot_id       TEXT NOT NULL REFERENCES bot (bot_id) ON DELETE CASCADE,
    name         TEXT NOT NULL,                       -- what the owner calls it
    prefix       TEXT NOT NULL,                       -- the key's first characters, shown in lists
    key_hash     TEXT NOT NULL,                       -- sha256 hex of the whole key
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_used_at TEXT,
    revoked_at   TEXT                                 -- revoked keys are kept, for the record
);
-- Authentication finds the candidates for a presented key by its prefix.
CREATE INDEX bot_key_prefix ON bot_key (prefix);
CREATE INDEX bot_key_bot ON bot_key (bot_id, created_at);

-- A conversation with a bot, on one channel: 'debug' (the admin trying the draft),
-- 'published' (the public page) or 'api' (a caller with one of the bot's keys).
CREATE TABLE conversation (
    conversation_id TEXT PRIMARY KEY,                 -- UUID
    bot_id          TEXT NOT NULL REFERENCES bot (bot_id) ON DELETE CASCADE,
    channel         TEXT NOT NULL CHECK (channel IN ('debug', 'published', 'api')),
    key_id          TEXT REFERENCES bot_key (key_id) ON DELETE SET NULL, -- the key, on 'api'
    title           TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX conversation_bot_channel_updated ON conversation (bot_id, channel, updated_at);
CREATE INDEX conversation_key_updated ON conversation (key_id, updated_at);

-- One turn of a conversation. An assistant turn is written as it streams, so a crash or a
-- client that goes away leaves it 'interrupted' rather than missing.
CREATE TABLE message (
    message_id      INTEGER PRIMARY KEY AUTOINCREMENT, -- also the order of the turns
    conversation_id TEXT NOT NULL REFERENCES conversation (conversation_id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'complete'
                    CHECK (status IN ('complete', 'interrupted', 'failed')),
    -- Opaque to the store. A user turn: the passages the model saw and the rewritten query;
    -- an assistant turn: citations, token usage, timings.
    context_json    TEXT,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX message_conversation ON message (conversation_id, message_id);
