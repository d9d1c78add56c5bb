DROP FUNCTION tetcore_derive(timestamptz, timestamptz);
DROP TABLE tetcore_derive_progress, tetcore_authority_sets, tetcore_grandpa_votes, tetcore_hardware,
    tetcore_version_hours, tetcore_node_hours, tetcore_chain_minutes, tetcore_node_minutes,
    tetcore_blocks, tetcore_block_arrivals, tetcore_chains;
DROP FUNCTION tetcore_ms(interval);
DROP FUNCTION tetcore_jsonb(text);
DROP FUNCTION tetcore_time(text);
