from django.apps import AppConfig


class CmdbConfig(AppConfig):
    name = "modules.cmdb"
    label = "cmdb"
    verbose_name = "CMDB (tenant plane)"

    def ready(self) -> None:
        from modules.records.registry import RecordKind, kind_register

        kind_register(
            RecordKind(
                name="ci",
                label="Configuration item",
                prefix="CI",
                selector="modules.cmdb.selectors.ci_get",
                console_path="cmdb/{number}/",
            )
        )
