-- Keys of the `custom` provider say how their key is sent: a header and a value template with
-- {key}. The SQLite twin is ../sqlite/0003_custom_auth.sql.

ALTER TABLE api_keys ADD COLUMN auth_header TEXT;
ALTER TABLE api_keys ADD COLUMN auth_template TEXT;
