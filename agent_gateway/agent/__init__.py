"""The agent program's project folder (its package is itsm_agent); a package only so its tests import
as agent_gateway.agent.tests and never clash with the root conftest.py or tests/."""
