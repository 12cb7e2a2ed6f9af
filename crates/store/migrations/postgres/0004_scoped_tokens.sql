-- Tokens belong to a tenant or to the farm (tenant NULL), and may expire.
-- Scopes: 'user' (always a tenant's), 'worker' (the farm's, or one tenant's)
-- and 'operator' (always the farm's). The farm-wide 'admin' tokens of old
-- become operator tokens and the old worker tokens farm worker tokens.
ALTER TABLE api_keys ALTER COLUMN tenant DROP NOT NULL;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
UPDATE api_keys SET scope = 'operator', tenant = NULL WHERE scope = 'admin';
UPDATE api_keys SET tenant = NULL WHERE scope = 'worker';
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope CHECK (scope IN ('user', 'worker', 'operator'));
ALTER TABLE api_keys ADD CONSTRAINT api_keys_user_has_tenant CHECK (scope <> 'user' OR tenant IS NOT NULL);
ALTER TABLE api_keys ADD CONSTRAINT api_keys_operator_is_farm CHECK (scope <> 'operator' OR tenant IS NULL);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at);
