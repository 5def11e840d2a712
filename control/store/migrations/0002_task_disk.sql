-- The disk rule a task names for the agent (docs/agent.md, "Disk choice"): '' is auto.
ALTER TABLE tasks ADD COLUMN disk TEXT NOT NULL DEFAULT '';
