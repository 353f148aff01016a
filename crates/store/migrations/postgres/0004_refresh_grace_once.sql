-- A rotated-out refresh token may be retried once within its client's
-- grace window; a second retry is a reuse (it would fork the family).
ALTER TABLE custos_refresh_tokens ADD COLUMN grace_used_at BIGINT;
