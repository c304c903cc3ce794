from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "modules.knowledge"
    label = "knowledge"
    verbose_name = "Knowledge (tenant plane)"

    def ready(self) -> None:
        from modules.records.registry import RecordKind, kind_register

        kind_register(
            RecordKind(
                name="article",
                label="Knowledge article",
                prefix="KB",
                selector="modules.knowledge.selectors.article_get",
                console_path="knowledge/{number}/",
            )
        )
