CREATE TABLE `result_acceptances` (
	`submission_id` integer PRIMARY KEY NOT NULL,
	`accepted` integer NOT NULL,
	`last_accepted_at` integer NOT NULL,
	FOREIGN KEY (`submission_id`) REFERENCES `submissions`(`id`) ON UPDATE no action ON DELETE no action
);
