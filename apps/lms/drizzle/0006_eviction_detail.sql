ALTER TABLE `session_ends` ADD `by_instance` text;--> statement-breakpoint
ALTER TABLE `session_ends` ADD `by_session` text;--> statement-breakpoint
ALTER TABLE `session_ends` ADD `quota_used` integer;--> statement-breakpoint
ALTER TABLE `session_ends` ADD `quota_max` integer;--> statement-breakpoint
ALTER TABLE `session_ends` ADD `quota_scope` text;