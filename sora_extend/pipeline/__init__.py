"""The pipeline's steps as plain functions: plan, render a segment, extract a hand-off frame, merge.

Each step is idempotent against the job's storage and ledger, so calling it again (a retry, a new
run, another worker) does no paid work twice. Prefect tasks in `tasks/` wrap these one to one.
"""
