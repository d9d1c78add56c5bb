DROP INDEX tetcore_logs_peer_msg_created_at_idx;
CREATE INDEX tetcore_logs_msg_created_at_idx ON tetcore_logs ((logs ->> 'msg'), created_at);
