-- A job may require a toolchain and a Lean project, by name; NULL: any.
ALTER TABLE jobs ADD COLUMN toolchain TEXT;
ALTER TABLE jobs ADD COLUMN project TEXT;
