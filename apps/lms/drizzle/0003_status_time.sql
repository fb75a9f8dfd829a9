DROP INDEX `submissions_queue_state_idx`;--> statement-breakpoint
DROP INDEX `submissions_pulled_idx`;--> statement-breakpoint
ALTER TABLE `submissions` ADD `score_failures` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `submissions` ADD `status_at` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
-- Backfill (hand-written): the last state change each existing row can show.
UPDATE `submissions` SET `status_at` = CASE `state` WHEN 'pulled' THEN coalesce(`pulled_at`, `created_at`) WHEN 'graded' THEN coalesce(`graded_at`, `created_at`) ELSE `created_at` END;--> statement-breakpoint
CREATE INDEX `submissions_queue_status_idx` ON `submissions` (`queue_name`,`state`,`status_at`);