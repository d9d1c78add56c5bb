DROP TABLE tetcore_node_state;
