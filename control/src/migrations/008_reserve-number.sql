-- Placeholder (issue #6 branch only): numbers 003-009 are issue #3's; this keeps 010 gap-free
-- until the lead renumbers at merge. Delete it then.
select 1;
