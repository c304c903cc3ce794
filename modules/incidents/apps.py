from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "modules.incidents"
    label = "incidents"
    verbose_name = "Incidents (tenant plane)"

    def ready(self) -> None:
        from modules.records.registry import RecordKind, kind_register

        kind_register(
            RecordKind(
                name="incident",
                label="Incident",
                prefix="INC",
                selector="modules.incidents.selectors.incident_get",
                console_path="incidents/{number}/",
                end_user_attachments=True,
            )
        )
