-- Reserved for issue 5 (media). Placeholder so that migration versions stay
-- gapless; the media session replaces this file.
SELECT 1;
