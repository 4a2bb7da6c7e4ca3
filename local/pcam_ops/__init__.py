"""pcam_ops: the operator's `pcam` command line (`cli`: its arguments; `operator_commands` and `local_commands`:
the commands; `rendering`: what they show). Its
commands for a deployed stack (`status`, `models`, `promote`, `rollback`, `rescore`, `redrive`, `smoke`:
`operations`, `report`, `smoke`) work against AWS itself; `pcam local …` and `pcam demo` start the embedded
local stack (`pcam_local`) first."""
