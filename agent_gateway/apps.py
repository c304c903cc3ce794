from django.apps import AppConfig


class AgentGatewayConfig(AppConfig):
    name = "agent_gateway"
    label = "agent_gateway"
    verbose_name = "Agent gateway: enrolment, agent credentials, reports and commands (control plane)"
