-- Reserved for issue 5 (encryption at rest). Placeholder so that migration
-- versions stay gapless; the crypt session replaces this file.
SELECT 1;
