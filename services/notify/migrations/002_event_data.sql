-- Keep each notification's event data, so a notification made before its user was
-- known (events from different producers arrive in any order) can be rendered
-- again, with the user's name, once user.registered arrives.
ALTER TABLE notifications ADD COLUMN data TEXT NOT NULL DEFAULT '{}';
