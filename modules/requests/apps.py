from django.apps import AppConfig


class ServiceRequestsConfig(AppConfig):
    """Package ``modules.requests``; label ``service_requests`` so it never shadows the ``requests``
    library (docs: STYLE.md "Layout")."""

    name = "modules.requests"
    label = "service_requests"
    verbose_name = "Service requests and the catalog (tenant plane)"

    def ready(self) -> None:
        from modules.records.registry import RecordKind, kind_register

        kind_register(
            RecordKind(
                name="service_request",
                label="Service request",
                prefix="REQ",
                selector="modules.requests.selectors.service_request_get",
                console_path="requests/{number}/",
                end_user_attachments=True,
            )
        )
