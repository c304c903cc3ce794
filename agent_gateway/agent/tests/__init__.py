"""Tests of the agent program (itsm_agent)."""
