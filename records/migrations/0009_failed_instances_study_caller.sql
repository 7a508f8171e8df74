-- A study's refusals of one caller, newest first (store.ts readStudy: the owner's, or a caller's own view). On
-- failed_instances_study (study, series) the caller and the order were neither in the index: the plan a named
-- statement comes to walked failed_instances_created backward through every study's refusals, filtering, and a custom
-- plan read every refusal of the study, every caller's (a workstation flooding the study's UID with refused
-- instances), to sort them. Here it is a backward seek that stops at the read's bound. No query reads refusals by
-- series, so the old index goes: this one serves any read by study too.
CREATE INDEX failed_instances_study_caller ON failed_instances (study_instance_uid, caller, created_at, id);
DROP INDEX failed_instances_study;
