"""itsm-agent: the endpoint agent of the MSP ITSM platform (protocol: docs/decisions/0018-agent-gateway.md)."""

__version__ = "0.1.0"
