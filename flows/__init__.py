"""Prefect flows. They orchestrate only: every step is a task in `tasks/` over `sora_extend`."""
