"""Workflow room: what runs when and in what state.

The analysis state machine (:mod:`daemon.workflow.state`), stability, the job queue, the analyse-a-study
orchestration, the prior-wait policy and the outbox.
"""
