from django.apps import AppConfig


class ChangesConfig(AppConfig):
    name = "modules.changes"
    label = "changes"
    verbose_name = "Changes and the CAB (tenant plane)"

    def ready(self) -> None:
        from modules.records.registry import RecordKind, kind_register

        kind_register(
            RecordKind(
                name="change",
                label="Change",
                prefix="CHG",
                selector="modules.changes.selectors.change_get",
                console_path="changes/{number}/",
            )
        )
