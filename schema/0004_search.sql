-- 0004: full-text search over users (the search_users operation). The RFC's
-- generated search_vector with a GIN index, fixed where it falls short:
-- PostgreSQL's parser keeps "quentin.smith@example.com" as one email token,
-- so the RFC's vector finds that user only by the whole address. Here the
-- vector holds the whole address (weight A) and also its parts, split on
-- every non-alphanumeric character (weight A): "quentin", "smith",
-- "example", "com". Metadata is weighted below email (B), and only its
-- string values are indexed, not its keys or JSON punctuation.
--
-- The 'english' configuration stems and drops stopwords; search_users must
-- build its query with the same configuration (websearch_to_tsquery(
-- 'english', ...)) for the stems to meet.

ALTER TABLE users ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, coalesce(email, '')), 'A') ||
        setweight(to_tsvector('english'::regconfig,
                              regexp_replace(coalesce(email, ''), '[^[:alnum:]]+', ' ', 'g')), 'A') ||
        setweight(jsonb_to_tsvector('english'::regconfig, coalesce(metadata, '{}'::jsonb), '["string"]'), 'B')
    ) STORED;

CREATE INDEX users_search_idx ON users USING GIN (search_vector);
