CREATE TABLE `login_attempts` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`key` text NOT NULL,
	`attempt` text NOT NULL,
	`state` text NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `login_attempts_key_idx` ON `login_attempts` (`key`,`state`,`at`);--> statement-breakpoint
CREATE INDEX `login_attempts_at_idx` ON `login_attempts` (`at`);--> statement-breakpoint
CREATE INDEX `login_attempts_attempt_idx` ON `login_attempts` (`attempt`);--> statement-breakpoint
CREATE TABLE `login_trust` (
	`pair` text PRIMARY KEY NOT NULL,
	`at` integer NOT NULL
);
