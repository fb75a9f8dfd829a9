ALTER TABLE `session_ends` ADD `quota_pool` text;--> statement-breakpoint
ALTER TABLE `sessions` ADD `pool` text DEFAULT 'default' NOT NULL;