CREATE TABLE `session_store` (
	`id` integer PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`redis_url` text,
	`redis_prefix` text,
	`recorded_at` integer NOT NULL
);
