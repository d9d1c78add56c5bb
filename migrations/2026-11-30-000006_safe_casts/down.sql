DROP FUNCTION tetcore_float(text);
DROP FUNCTION tetcore_int(text);
