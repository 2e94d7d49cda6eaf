-- 0012: search_users finds a user by any part of the address they can see
-- (issue 17). 0004's vector holds the whole address and its alphanumeric
-- runs, but PostgreSQL's parser reads a query such as "jean-luc" as the
-- compound 'jean-luc' followed by its parts, "jean.luc" as the host name
-- 'jean.luc' and "luc@example.com" as one email token: none of these was in
-- the vector, so such queries found nothing.
--
-- Both sides change:
-- * the vector (weight A, as in 0004) also holds the local part and the
--   domain as the parser reads them on their own: "jean-luc" gives
--   'jean-luc', 'jean', 'luc'; "jean.luc" gives 'jean.luc'; "example.com"
--   gives 'example.com'. So the parser's compounds, which the query side
--   produces as well, are present (including ones whose parts are all
--   stopwords, such as "the-who").
-- * the query goes through torii_search_query(text): the web-search query
--   as before, OR the same query where every word with separators inside
--   it (anything but letters, digits, spaces and quotes between two
--   letters or digits: "jean-luc", "bob+news", "luc@example.com") becomes
--   the phrase of its parts ("jean luc" in quotes, so a leading '-' still
--   negates the whole word). The phrase meets 0004's run of parts in order,
--   so any run of consecutive parts of an address, or the whole address,
--   matches, in any case.
-- Ranking is unchanged: ts_rank over the same weights, email above metadata.
--
-- PostgreSQL 15 cannot change a generated column's expression, so the
-- column (and its index) is dropped and added again; this rewrites users.

ALTER TABLE users DROP COLUMN search_vector;

ALTER TABLE users ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, coalesce(email, '')), 'A') ||
        setweight(to_tsvector('english'::regconfig,
                              regexp_replace(coalesce(email, ''), '[^[:alnum:]]+', ' ', 'g')), 'A') ||
        setweight(to_tsvector('english'::regconfig, split_part(coalesce(email, ''), '@', 1)), 'A') ||
        setweight(to_tsvector('english'::regconfig,
                              substr(coalesce(email, ''), strpos(coalesce(email, ''), '@') + 1)), 'A') ||
        setweight(jsonb_to_tsvector('english'::regconfig, coalesce(metadata, '{}'::jsonb), '["string"]'), 'B')
    ) STORED;

CREATE INDEX users_search_idx ON users USING GIN (search_vector);

-- The tsquery search_users matches users.search_vector with (see above).
-- Words inside a quoted phrase only have their separators turned into
-- spaces (they are in a phrase already).
CREATE FUNCTION torii_search_query(query text) RETURNS tsquery
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    word text;
    parts text;
    normalised text := '';
    quoted boolean := false;
BEGIN
    FOREACH word IN ARRAY regexp_split_to_array(query, '[[:space:]]+') LOOP
        parts := regexp_replace(word, '([[:alnum:]])[^[:alnum:][:space:]"]+(?=[[:alnum:]])', '\1 ', 'g');
        IF parts <> word AND NOT quoted AND strpos(word, '"') = 0 THEN
            IF left(parts, 1) = '-' THEN
                parts := '-"' || substr(parts, 2) || '"';
            ELSE
                parts := '"' || parts || '"';
            END IF;
        END IF;
        normalised := normalised || ' ' || parts;
        IF (length(word) - length(replace(word, '"', ''))) % 2 = 1 THEN
            quoted := NOT quoted;
        END IF;
    END LOOP;
    RETURN websearch_to_tsquery('english'::regconfig, query) ||
           websearch_to_tsquery('english'::regconfig, normalised);
END
$$;
